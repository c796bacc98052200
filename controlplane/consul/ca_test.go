package consul

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
)

// leafRotationLimit bounds the wait for new leaves after a roots change:
// Consul's agent re-signs them at a random point of a 30 s window
// (leafcert caChangeJitterWindow, not configurable outside Consul's own
// tests).
const leafRotationLimit = 45 * time.Second

// TestConnectCAAndIntentions: the watcher follows the Connect CA roots, one
// leaf per service with a sidecar (dropped with its last sidecar),
// service-intentions entries and the agent's default; a Consul outage keeps
// the certificates.
func TestConnectCAAndIntentions(t *testing.T) {
	t.Parallel() // overlaps TestCARotation's wait for the agent's re-signing
	agent := consultest.Start(t)
	c := agent.Client
	log, _ := newTestLogger(t)
	w := NewWatcher(c, testOptions(log))
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	registerWeb(t, c, "web-1", "v1", 8080)
	// A service without a sidecar gets no leaf.
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432, Address: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	m := rec.waitFor("with web's leaf and the roots", func(m *model.Mesh) bool {
		return m.Leaves["web"] != nil && m.Roots != nil && m.Services["db"] != nil
	})
	if m.TrustDomain == "" || m.Roots.TrustDomain != m.TrustDomain || m.RootsIndex == 0 {
		t.Errorf("trust domain %q, roots' %q, roots index %d", m.TrustDomain, m.Roots.TrustDomain, m.RootsIndex)
	}
	if !m.IntentionDefaultAllow {
		t.Error("IntentionDefaultAllow = false in dev mode (ACL default policy allow)")
	}
	if _, ok := m.Leaves["db"]; ok || len(m.Leaves) != 1 {
		t.Errorf("leaves for %v, want only web (db has no sidecar)", sortedKeys(m.Leaves))
	}
	leaf := m.Leaves["web"]
	if leaf.ModifyIndex == 0 || leaf.PrivateKeyPEM == "" {
		t.Errorf("leaf index %d, key %d bytes", leaf.ModifyIndex, len(leaf.PrivateKeyPEM))
	}
	cert := verifyLeaf(t, leaf, m.Roots)
	if want := "spiffe://" + m.TrustDomain + "/ns/default/dc/dc1/svc/web"; len(cert.URIs) != 1 || cert.URIs[0].String() != want {
		t.Errorf("leaf URIs %v, want %s", cert.URIs, want)
	}

	// Intentions: an entry per destination, "*" included.
	setEntry(t, c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "web", Sources: []*api.SourceIntention{
		{Name: "frontend", Action: api.IntentionActionDeny},
	}})
	setEntry(t, c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "*", Sources: []*api.SourceIntention{
		{Name: "*", Action: api.IntentionActionAllow},
	}})
	m = rec.waitFor("with two intentions entries", func(m *model.Mesh) bool { return len(m.Intentions) == 2 })
	if src := m.Intentions["web"].Sources; len(src) != 1 || src[0].Name != "frontend" || src[0].Action != api.IntentionActionDeny {
		t.Errorf("web's intentions: %+v", src)
	}
	if _, ok := m.Services["*"]; ok {
		t.Error(`the "*" intentions entry became a service`)
	}
	deleteEntry(t, c, api.ServiceIntentions, "web")
	rec.waitFor("with web's intentions deleted", func(m *model.Mesh) bool { return m.Intentions["web"] == nil && m.Intentions["*"] != nil })

	// An outage keeps the certificates: frozen Consul, then a change after
	// it answers again still carries web's leaf.
	if err := agent.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for w.Up() {
		if time.Now().After(deadline) {
			t.Fatal("Up() still true with Consul frozen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := agent.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "db-2", Name: "db", Port: 5433, Address: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	m = rec.waitFor("with db-2 after the outage", func(m *model.Mesh) bool {
		return m.Services["db"] != nil && slices.Contains(ids(m.Services["db"].Instances), "db-2")
	})
	if m.Leaves["web"] == nil || m.Leaves["web"].SerialNumber != leaf.SerialNumber || m.Roots == nil {
		t.Errorf("after the outage: leaf %v, roots %v; want web's leaf and the roots kept", m.Leaves["web"], m.Roots)
	}

	// The last sidecar of web goes: its leaf goes with it.
	if err := c.Agent().ServiceDeregister("web-1-sidecar-proxy"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor("without web's leaf", func(m *model.Mesh) bool { return len(m.Leaves) == 0 && len(m.Proxies) == 0 })
}

// TestCARotation: a new root through Consul's CA configuration endpoint
// reaches the Mesh as a two-root bundle at once, and the agent's re-signed
// leaf follows when the agent issues it.
func TestCARotation(t *testing.T) {
	t.Parallel() // most of it is waiting for the agent's re-signing jitter
	agent := consultest.Start(t)
	c := agent.Client
	log, _ := newTestLogger(t)
	w := NewWatcher(c, testOptions(log))
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	registerWeb(t, c, "web-1", "v1", 8080)
	before := rec.waitFor("with web's leaf", func(m *model.Mesh) bool { return m.Leaves["web"] != nil && m.Roots != nil })
	oldRoot := before.Roots.ActiveRootID

	start := rotateCA(t, c)
	m := rec.waitFor("with the new root", func(m *model.Mesh) bool {
		return m.Roots != nil && m.Roots.ActiveRootID != oldRoot
	})
	t.Logf("new root in a published mesh %v after the CA configuration changed", time.Since(start).Round(time.Millisecond))
	if len(m.Roots.Roots) != 2 {
		t.Errorf("%d roots during the rotation, want the old and the new", len(m.Roots.Roots))
	}
	if m.TrustDomain != before.TrustDomain {
		t.Errorf("trust domain changed from %q to %q", before.TrustDomain, m.TrustDomain)
	}
	if m.RootsIndex <= before.RootsIndex {
		t.Errorf("roots index %d after %d", m.RootsIndex, before.RootsIndex)
	}

	m = rec.waitWithin(leafRotationLimit, "with web's leaf re-signed", func(m *model.Mesh) bool {
		return m.Leaves["web"] != nil && m.Leaves["web"].SerialNumber != before.Leaves["web"].SerialNumber
	})
	t.Logf("re-signed leaf in a published mesh %v after the CA configuration changed", time.Since(start).Round(time.Millisecond))
	// The new leaf chains to the new root, and (through the cross-signed
	// intermediate Consul appends) to the old one.
	var active *api.CARoot
	for _, r := range m.Roots.Roots {
		if r.Active {
			active = r
		}
	}
	verifyLeaf(t, m.Leaves["web"], &api.CARootList{Roots: []*api.CARoot{active}})
	verifyLeaf(t, m.Leaves["web"], before.Roots)
	if m.Leaves["web"].ModifyIndex <= before.Leaves["web"].ModifyIndex {
		t.Errorf("leaf index %d after %d", m.Leaves["web"].ModifyIndex, before.Leaves["web"].ModifyIndex)
	}
}

// rotateCA gives Consul's built-in CA provider a new private key, so it
// generates a new root, cross-signs it and starts signing with it. It
// returns when Consul accepted the change.
func rotateCA(t *testing.T, c *api.Client) time.Time {
	t.Helper()
	conf, _, err := c.Connect().CAGetConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	conf.Config["PrivateKey"] = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	conf.Config["RootCert"] = ""
	if _, err := c.Connect().CASetConfig(conf, nil); err != nil {
		t.Fatalf("CA rotation: %v", err)
	}
	return time.Now()
}

// verifyLeaf checks that leaf's chain verifies against roots for client
// and server use, and returns the leaf certificate.
func verifyLeaf(t *testing.T, leaf *api.LeafCert, roots *api.CARootList) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	rest := []byte(leaf.CertPEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("leaf chain: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("leaf has no certificate: %q", leaf.CertPEM)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots.Roots {
		if !pool.AppendCertsFromPEM([]byte(r.RootCertPEM)) {
			t.Fatalf("root %s does not parse", r.ID)
		}
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		ids := []string{}
		for _, r := range roots.Roots {
			ids = append(ids, r.ID)
		}
		t.Errorf("leaf %s does not verify against roots %s: %v", leaf.SerialNumber, strings.Join(ids, ","), err)
	}
	return certs[0]
}
