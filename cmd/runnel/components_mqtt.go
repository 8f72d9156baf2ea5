package main

func (w *wiring) startMQTT(stops *[]stopper) error { return nil }
