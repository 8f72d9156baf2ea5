package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/runnel/runnel/ingest/access"
	"github.com/runnel/runnel/ingest/certs"
	"github.com/runnel/runnel/ingest/mqtt"
)

// Who may connect without credentials, and the warnings that go with an
// open door (logged at every start and shown in /api/status "security").

// anonymousWarnings lists every listener that lets a client that is not
// on the loopback interface in without credentials.
func (c *serveConfig) anonymousWarnings() []string {
	var out []string
	if c.Kafka.Addr != "" && len(c.Kafka.Users) == 0 && c.AllowRemoteAnonymous {
		out = append(out, "kafka: anonymous clients from any address may produce, consume, create and delete topics (allow-remote-anonymous)")
	}
	if c.MQTT.Addr != "" || c.MQTT.TLS.Addr != "" || c.MQTT.WebsocketAddr != "" {
		if anon, remote := c.mqttAnonymous(); anon && remote {
			out = append(out, "mqtt: anonymous clients from any address may publish and subscribe (allow-remote-anonymous)")
		}
	}
	if c.HTTP.Addr != "" {
		switch c.httpAnonymous() {
		case "write":
			out = append(out, "http: anonymous clients from any address may read, produce, publish and pause routes (http.anonymous: write)")
		case "read":
			out = append(out, "http: anonymous clients from any address may read every topic (http.anonymous: read)")
		}
	}
	return out
}

// mqttAnonymous: whether anonymous MQTT clients are allowed at all
// (mqtt.allow-anonymous, default: while no mqtt.users), and from any
// address (allow-remote-anonymous).
func (c *serveConfig) mqttAnonymous() (anon, remote bool) {
	anon = len(c.mqttUsers()) == 0
	if c.MQTT.AllowAnonymous != nil {
		anon = *c.MQTT.AllowAnonymous
	}
	return anon, anon && c.AllowRemoteAnonymous
}

// httpAnonymous is http.anonymous, where allow-remote-anonymous turns the
// default `loopback` into `write`.
func (c *serveConfig) httpAnonymous() string {
	if c.AllowRemoteAnonymous && (c.HTTP.Anonymous == "loopback" || c.HTTP.Anonymous == "") {
		return "write"
	}
	return c.HTTP.Anonymous
}

// securityStatus is /api/status "security".
type securityStatus struct {
	AllowRemoteAnonymous bool     `json:"allow_remote_anonymous"`
	Warnings             []string `json:"warnings"`
}

// startSecurity logs the warnings (at every start) and adds them to
// /api/status.
func (w *wiring) startSecurity() {
	warn := w.cfg.anonymousWarnings()
	for _, m := range warn {
		w.logger.Warn("SECURITY: "+m+": set only on a trusted, isolated network", "component", "security")
	}
	for _, m := range w.cfg.deprecationWarnings() {
		w.logger.Warn(m, "component", "security")
	}
	st := securityStatus{AllowRemoteAnonymous: w.cfg.AllowRemoteAnonymous, Warnings: append([]string{}, warn...)}
	w.status["security"] = func() any { return st }
}

// mqttUsers are mqtt.users and the accounts of users-file (a name in both
// keeps mqtt.users' hash).
func (c *serveConfig) mqttUsers() []mqtt.User {
	out := append([]mqtt.User(nil), c.MQTT.Users...)
	f, _, err := c.accounts()
	if err != nil {
		return out // refused by validate
	}
	for _, e := range f.Users {
		if !slices.ContainsFunc(out, func(u mqtt.User) bool { return u.Name == e.Name }) {
			out = append(out, mqtt.User{Name: e.Name, PasswordHash: e.Bcrypt})
		}
	}
	return out
}

// deprecationWarnings are settings that still work but should go.
func (c *serveConfig) deprecationWarnings() []string {
	if len(c.Kafka.Users) > 0 {
		return []string{"kafka.users (--kafka-user NAME:PASSWORD) is deprecated: the password shows in `ps` and in the config file; move the accounts to users-file with `runnel user add`"}
	}
	return nil
}

// tlsPair loads a reloadable key pair (package certs) and keeps it for
// SIGHUP (reloadTLS).
func (w *wiring) tlsPair(key, certFile, keyFile string) (*certs.Pair, error) {
	p, err := certs.Load(certFile, keyFile, w.logger.With("component", "tls"))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %v", key, err)
	}
	w.tlsPairs = append(w.tlsPairs, p)
	return p, nil
}

// reloadTLS reloads every key pair (SIGHUP); a pair that does not load
// keeps the one in use (logged by certs).
func (w *wiring) reloadTLS() {
	for _, p := range w.tlsPairs {
		p.Reload()
	}
	w.logger.Info("SIGHUP: TLS certificates reloaded", "pairs", len(w.tlsPairs))
}

// reloadUsers reads users-file again (SIGHUP) and gives Kafka, MQTT and
// HTTP the new accounts; clients already authenticated stay connected. A
// file that does not read keeps the accounts in use.
func (w *wiring) reloadUsers() {
	if w.cfg.UsersFile == "" {
		return
	}
	f, _, err := w.cfg.accounts()
	if err != nil {
		w.logger.Error("SIGHUP: users-file not reloaded; the accounts in use are kept", "err", err)
		return
	}
	inClear := map[string]string{}
	for _, u := range w.cfg.Kafka.Users {
		name, pass, _ := strings.Cut(u, ":")
		inClear[name] = pass
	}
	if w.webUsers != nil {
		w.webUsers.Replace(f.Users, inClear)
	}
	if w.kafkaUsers != nil {
		if pc, err := w.cfg.sitePeerCredential(); err == nil && pc.derived {
			inClear[sitePeerUser] = pc.pass
		}
		w.kafkaUsers.Replace(f.Users, inClear)
	}
	if w.mqttUsers != nil {
		w.mqttUsers(w.cfg.mqttUsers())
	}
	w.logger.Info("SIGHUP: users-file reloaded", "users", len(f.Users))
}

// produceQuotas is access.quotas, one instance for Kafka and MQTT (nil
// without quotas).
func (w *wiring) produceQuotas() *access.Quotas {
	if w.quotas == nil {
		if rate := w.cfg.producerByteRate(); rate != nil {
			w.quotas = access.NewQuotas(rate)
		}
	}
	return w.quotas
}
