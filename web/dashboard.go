package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard: static files embedded in the binary (no build step, no
// CDN), served under /ui/. The Content-Security-Policy lets its pages
// reach nothing but this box.
//
//go:embed ui
var uiFiles embed.FS

const uiCSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

func (s *Server) ui(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(uiFiles, "ui")
	w.Header().Set("Content-Security-Policy", uiCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	http.StripPrefix("/ui/", http.FileServerFS(sub)).ServeHTTP(w, r)
}

const indexHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>runnel</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;line-height:1.5">
<h1>runnel</h1>
<p><a href="/ui/">Dashboard</a></p>
<ul>
<li><a href="/api/overview">/api/overview</a>, <a href="/api/status">/api/status</a>, <a href="/api/topics">/api/topics</a>,
<a href="/api/uplink">/api/uplink</a>, <a href="/api/consumers">/api/consumers</a>, <a href="/api/mqtt">/api/mqtt</a>, <a href="/api/peers">/api/peers</a></li>
<li><a href="/topics">/topics</a> (Confluent REST Proxy v2: produce, read), <code>/topics/{topic}/tail</code> (live tail, Server-Sent Events)</li>
<li><a href="/metrics">/metrics</a> (Prometheus), <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a></li>
</ul></body></html>
`

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", uiCSP)
	w.Write([]byte(indexHTML))
}
