package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/proxy/admin"
	"github.com/outrigger-mesh/outrigger/xds/client"
)

// The admin API's view of the server.
var _ admin.Backend = (*Server)(nil)

// Ready is true once every listener serves and, with dynamic_resources,
// the first configuration from the xDS server is in force (or the initial
// fetch timeout passed); false again while draining.
func (s *Server) Ready() bool {
	select {
	case <-s.synced:
	default:
		return false
	}
	return s.ready.Load() && !s.draining.Load()
}

// Draining reports a drain in progress.
func (s *Server) Draining() bool { return s.draining.Load() }

// ConfigDump is the bootstrap in force as protojson, the shape Envoy's
// /config_dump gives for its bootstrap section.
func (s *Server) ConfigDump() ([]byte, error) {
	b := s.opts.Bootstrap
	if b == nil || b.Proto == nil {
		return []byte("{}"), nil
	}
	body, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b.Proto)
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	sb.WriteString(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","bootstrap":`)
	sb.Write(body)
	sb.WriteString("}")
	if c := s.ads.Load(); c != nil {
		js, err := json.Marshal(xdsStatus(c.Status()))
		if err != nil {
			return nil, err
		}
		sb.WriteString(",")
		sb.Write(js)
	}
	sb.WriteString("]}\n")
	return []byte(sb.String()), nil
}

// xdsStatus is the xDS client's status as /config_dump shows it: not an
// Envoy type, what the client holds, for people and tests.
func xdsStatus(st client.Status) any {
	type typeStatus struct {
		Version          string   `json:"version"`
		Resources        int      `json:"resources"`
		Accepted         uint64   `json:"accepted"`
		Rejected         uint64   `json:"rejected"`
		LastError        string   `json:"last_error,omitempty"`
		LastErrorVersion string   `json:"last_error_version,omitempty"`
		LastErrorTime    string   `json:"last_error_time,omitempty"`
		Missing          []string `json:"missing,omitempty"`
	}
	out := struct {
		Type      string                `json:"@type"`
		Connected bool                  `json:"connected"`
		Types     map[string]typeStatus `json:"types"`
	}{Type: "outrigger.XdsStatus", Connected: st.Connected, Types: map[string]typeStatus{}}
	for u, t := range st.Types {
		ts := typeStatus{Version: t.Version, Resources: t.Resources, Accepted: t.Accepted, Rejected: t.Rejected,
			LastError: t.LastError, LastErrorVersion: t.LastErrorVersion, Missing: t.Missing}
		if !t.LastErrorTime.IsZero() {
			ts.LastErrorTime = t.LastErrorTime.UTC().Format(time.RFC3339Nano)
		}
		out.Types[u] = ts
	}
	return out
}

// Clusters is Envoy's /clusters text.
func (s *Server) Clusters() []byte {
	var b bytes.Buffer
	if err := s.cls.WriteText(&b); err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
	}
	return b.Bytes()
}

// LogLevel is the process log level.
func (s *Server) LogLevel() string { return s.level.Load().(string) }

// SetLogLevel changes the process log level at run time.
func (s *Server) SetLogLevel(level string) error {
	s.log.SetLevel(hclog.LevelFromString(level))
	s.level.Store(level)
	s.log.Info("log level changed", "level", level)
	return nil
}

// DrainListeners starts a drain without exiting (Envoy's
// /drain_listeners): readiness turns 503 and listeners stop accepting.
func (s *Server) DrainListeners() {
	s.drainOne.Do(func() { close(s.drainReq) })
}

// Quit asks Run to drain and return.
func (s *Server) Quit() {
	s.quitOne.Do(func() { close(s.quit) })
}

// Gatherer serves /stats/prometheus.
func (s *Server) Gatherer() prometheus.Gatherer { return s.metrics.Gatherer() }

func levelName(l hclog.Level) string {
	switch l {
	case hclog.Trace:
		return "trace"
	case hclog.Debug:
		return "debug"
	case hclog.Warn:
		return "warn"
	case hclog.Error:
		return "error"
	case hclog.Off:
		return "off"
	}
	return "info"
}
