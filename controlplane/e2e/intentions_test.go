package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
)

// TestIntentions: Consul intentions become RBAC in api's sidecar. A deny
// from web turns 200s into 403s within 2 s and deleting it restores them;
// an L7 intention allows by path and method; an exact source beats "*".
func TestIntentions(t *testing.T) {
	s := startTwoServices(t)
	took := map[string]time.Duration{}

	writeEntry(t, s.c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "api", Sources: []*api.SourceIntention{
		{Name: "web", Action: api.IntentionActionDeny},
	}})
	took["deny web -> api"] = eventually(t, s.hc, s.url, followWithin, []string{"status 403"})
	deleteEntry(t, s.c, api.ServiceIntentions, "api")
	took["deny deleted"] = eventually(t, s.hc, s.url, followWithin, []string{"api"})

	// L7: web may GET under /public only (default allow: the catch-all
	// deny is what makes it a whitelist).
	writeEntry(t, s.c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "api", Sources: []*api.SourceIntention{
		{Name: "web", Permissions: []*api.IntentionPermission{
			{Action: api.IntentionActionAllow, HTTP: &api.IntentionHTTPPermission{PathPrefix: "/public", Methods: []string{"GET"}}},
			{Action: api.IntentionActionDeny, HTTP: &api.IntentionHTTPPermission{PathPrefix: "/"}},
		}},
	}})
	took["L7 intention"] = eventually(t, s.hc, s.url, followWithin, []string{"status 403"})
	eventually(t, s.hc, s.url+"public/x", followWithin, []string{"api"})
	if got := tallyMethod(t, s, "POST", s.url+"public/x"); got != 403 {
		t.Errorf("POST /public/x: %d, want 403 (only GET is allowed)", got)
	}

	// "*" denies everyone, an exact allow for web wins.
	writeEntry(t, s.c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "api", Sources: []*api.SourceIntention{
		{Name: "*", Action: api.IntentionActionDeny},
		{Name: "web", Action: api.IntentionActionAllow},
	}})
	took["exact allow over * deny"] = eventually(t, s.hc, s.url, followWithin, []string{"api"})
	writeEntry(t, s.c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "api", Sources: []*api.SourceIntention{
		{Name: "*", Action: api.IntentionActionDeny},
	}})
	took["* deny"] = eventually(t, s.hc, s.url, followWithin, []string{"status 403"})
	// A "*" destination entry applies to api too, below api's own.
	deleteEntry(t, s.c, api.ServiceIntentions, "api")
	eventually(t, s.hc, s.url, followWithin, []string{"api"})
	writeEntry(t, s.c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "*", Sources: []*api.SourceIntention{
		{Name: "web", Action: api.IntentionActionDeny},
	}})
	took["web -> * deny"] = eventually(t, s.hc, s.url, followWithin, []string{"status 403"})
	writeEntry(t, s.c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "api", Sources: []*api.SourceIntention{
		{Name: "web", Action: api.IntentionActionAllow},
	}})
	took["web -> api allow over web -> * deny"] = eventually(t, s.hc, s.url, followWithin, []string{"api"})
	for what, d := range took {
		t.Logf("intention change %-25s reached traffic in %v", what, d.Round(time.Millisecond))
	}
	if n := s.cp.metric("outrigger_cp_xds_nacks_total"); n != 0 {
		t.Errorf("%v NACKs: %+v", n, s.cp.srv.Status().LastNACKs)
	}
}

// tallyMethod sends one request with method and returns its status (0 on
// error).
func tallyMethod(t *testing.T, s *twoServices, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Logf("%s %s: %v", method, url, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// echoApp echoes every connection's bytes back, on a loopback port.
func echoApp(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return lis.Addr().(*net.TCPAddr).Port
}

// echoes reports whether a connection to addr gets "ping" back.
func echoes(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "ping"); err != nil {
		return false
	}
	b := make([]byte, 4)
	_, err = io.ReadFull(c, b)
	return err == nil && string(b) == "ping"
}

// TestIntentionsTCP: on a tcp service, an L4 deny closes web's connections
// to db at db's sidecar within 2 s, and deleting it lets them through.
func TestIntentionsTCP(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "db", Protocol: "tcp"})
	cp := startControlPlane(t, c)
	bind := freePort(t)
	register(t, c, "db", "db-1", echoApp(t), nil, freePort(t))
	register(t, c, "web", "web-1", freePort(t), nil, freePort(t), api.Upstream{DestinationName: "db", LocalBindPort: bind})
	sidecar(t, cp, "db-1-sidecar-proxy", "db", false)
	sidecar(t, cp, "web-1-sidecar-proxy", "web", false)
	addr := fmt.Sprintf("127.0.0.1:%d", bind)

	waitEcho := func(limit time.Duration, want bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < limit {
			// Three in a row: a connection opened before the change may
			// still have gone through.
			if echoes(addr) == want && echoes(addr) == want && echoes(addr) == want {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("connections through web's sidecar to db: echo %v after %v, want %v", !want, limit, want)
		return 0
	}
	waitEcho(20*time.Second, true)
	writeEntry(t, c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "db", Sources: []*api.SourceIntention{
		{Name: "web", Action: api.IntentionActionDeny},
	}})
	t.Logf("deny web -> db closed connections after %v", waitEcho(followWithin, false).Round(time.Millisecond))
	deleteEntry(t, c, api.ServiceIntentions, "db")
	t.Logf("deleting it let them through after %v", waitEcho(followWithin, true).Round(time.Millisecond))
}
