package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// endpoint is one admin path. A mutating endpoint accepts only POST, as
// Envoy's does, so a stray GET (a browser, a crawler, a probe) cannot drain
// or stop the proxy.
type endpoint struct {
	path   string
	mutate bool
	help   string
	serve  func(w http.ResponseWriter, r *http.Request)
}

type handler struct {
	b         Backend
	logger    hclog.Logger
	endpoints map[string]*endpoint
	index     []byte
}

func newHandler(b Backend, logger hclog.Logger) *handler {
	h := &handler{b: b, logger: logger, endpoints: make(map[string]*endpoint)}
	metrics := promhttp.HandlerFor(b.Gatherer(), promhttp.HandlerOpts{
		ErrorLog: logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		// A broken collector should not hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
	})
	for _, e := range []*endpoint{
		{path: "/", help: "this list of endpoints", serve: h.serveIndex},
		{path: "/ready", help: "200 LIVE once serving; 503 PRE_INITIALIZING or DRAINING otherwise", serve: h.serveReady},
		{path: "/stats", help: "metrics as text, one name{labels}: value per line (?filter=REGEX, ?usedonly)", serve: h.serveStats},
		{path: "/stats/prometheus", help: "metrics in the Prometheus text format", serve: metrics.ServeHTTP},
		{path: "/config_dump", help: "the configuration in force, as JSON", serve: h.serveConfigDump},
		{path: "/clusters", help: "upstream clusters and their hosts", serve: h.serveClusters},
		{path: "/logging", help: "GET: the log level; POST ?level=trace|debug|info|warn|error|off: set it", serve: h.serveLogging},
		{path: "/drain_listeners", mutate: true, help: "stop accepting connections and drain the listeners", serve: h.serveDrain},
		{path: "/quitquitquit", mutate: true, help: "shut the proxy down", serve: h.serveQuit},
	} {
		h.endpoints[e.path] = e
	}
	h.index = buildIndex(h.endpoints)
	return h
}

func buildIndex(eps map[string]*endpoint) []byte {
	paths := make([]string, 0, len(eps))
	for p := range eps {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var sb strings.Builder
	sb.WriteString("outrigger admin\n\n")
	for _, p := range paths {
		e := eps[p]
		method := "GET "
		switch {
		case e.mutate:
			method = "POST"
		case p == "/logging":
			method = "GET|POST"
		}
		fmt.Fprintf(&sb, "  %-8s %-18s %s\n", method, p, e.help)
	}
	return []byte(sb.String())
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-cache, max-age=0")
	hdr.Set("X-Content-Type-Options", "nosniff")
	e, ok := h.endpoints[r.URL.Path]
	if !ok {
		writeText(w, http.StatusNotFound, "not found: "+r.URL.Path+"; GET / lists the endpoints\n")
		return
	}
	switch {
	case e.mutate && r.Method != http.MethodPost:
		hdr.Set("Allow", http.MethodPost)
		writeText(w, http.StatusMethodNotAllowed, e.path+" changes state: use POST\n")
		return
	case !e.mutate && e.path != "/logging" && r.Method != http.MethodGet && r.Method != http.MethodHead:
		hdr.Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, e.path+" is read-only: use GET\n")
		return
	}
	h.logger.Debug("admin request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	e.serve(w, r)
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

func (h *handler) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = w.Write(h.index)
}

func (h *handler) serveReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case h.b.Draining():
		writeText(w, http.StatusServiceUnavailable, "DRAINING\n")
	case h.b.Ready():
		writeText(w, http.StatusOK, "LIVE\n")
	default:
		writeText(w, http.StatusServiceUnavailable, "PRE_INITIALIZING\n")
	}
}

func (h *handler) serveConfigDump(w http.ResponseWriter, _ *http.Request) {
	dump, err := h.b.ConfigDump()
	if err != nil {
		h.logger.Error("config dump failed", "error", err)
		writeText(w, http.StatusInternalServerError, "config dump failed: "+err.Error()+"\n")
		return
	}
	// Private keys never leave the proxy, whatever the backend dumped.
	if dump, err = redactSecrets(dump); err != nil {
		h.logger.Error("config dump is not JSON; not served", "error", err)
		writeText(w, http.StatusInternalServerError, "config dump failed: "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(dump)
}

func (h *handler) serveClusters(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = w.Write(h.b.Clusters())
}

// envoyLevels maps Envoy's level names, and hclog's, to hclog's.
var envoyLevels = map[string]string{
	"trace": "trace", "debug": "debug", "info": "info",
	"warn": "warn", "warning": "warn",
	"error": "error", "critical": "error",
	"off": "off",
}

func (h *handler) serveLogging(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if len(q) > 0 {
			w.Header().Set("Allow", "GET, HEAD, POST")
			writeText(w, http.StatusMethodNotAllowed, "/logging changes state when given parameters: use POST\n")
			return
		}
		h.writeLevel(w)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeText(w, http.StatusMethodNotAllowed, "/logging: use GET to read the level or POST to set it\n")
		return
	}
	if bad := unknownParams(q, "level"); bad != "" {
		writeText(w, http.StatusBadRequest, "/logging: unsupported parameter "+bad+"; only level= is supported\n")
		return
	}
	if !q.Has("level") {
		h.writeLevel(w)
		return
	}
	raw := q.Get("level")
	level, ok := envoyLevels[strings.ToLower(raw)]
	if !ok {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("/logging: unknown level %q; use trace, debug, info, warn, error or off\n", raw))
		return
	}
	if err := h.b.SetLogLevel(level); err != nil {
		h.logger.Error("setting log level failed", "level", level, "error", err)
		writeText(w, http.StatusInternalServerError, "/logging: "+err.Error()+"\n")
		return
	}
	h.logger.Info("log level changed", "level", level, "remote", r.RemoteAddr)
	h.writeLevel(w)
}

func (h *handler) writeLevel(w http.ResponseWriter) {
	writeText(w, http.StatusOK, "active loggers:\n  outrigger: "+h.b.LogLevel()+"\n")
}

// unknownParams returns the first parameter of q not in allowed, sorted so
// the answer is deterministic, or "".
func unknownParams(q url.Values, allowed ...string) string {
	var bad []string
	for k := range q {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	sort.Strings(bad)
	return bad[0]
}

func (h *handler) serveDrain(w http.ResponseWriter, r *http.Request) {
	// Our drain is always graceful, so Envoy's ?graceful is accepted as is;
	// ?inboundonly and others are refused rather than silently ignored.
	if bad := unknownParams(r.URL.Query(), "graceful"); bad != "" {
		writeText(w, http.StatusBadRequest, "/drain_listeners: unsupported parameter "+bad+"; only graceful is supported (drains are always graceful)\n")
		return
	}
	h.logger.Info("drain requested", "remote", r.RemoteAddr)
	h.b.DrainListeners()
	writeText(w, http.StatusOK, "OK\n")
}

func (h *handler) serveQuit(w http.ResponseWriter, r *http.Request) {
	h.logger.Info("quit requested", "remote", r.RemoteAddr)
	writeText(w, http.StatusOK, "OK\n")
	// Get the answer onto the wire before the process starts to go away.
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	h.b.Quit()
}
