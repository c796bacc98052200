package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// helloReply is what httpapp answers on GET /hello.
type helloReply struct {
	Service  string            `json:"service"`
	Instance string            `json:"instance"`
	Path     string            `json:"path"`
	Proto    string            `json:"proto"`
	Headers  map[string]string `json:"headers"`
}

// statusBody is the direct_response body configured in bootstrap.yaml.
const statusBody = "outrigger static demo\n"

// waitReady polls url until it answers 200 or wait has passed.
func waitReady(ctx context.Context, url string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		err := probe(ctx, client, url)
		if err == nil {
			return nil
		}
		// A probe cut short by the deadline says less than the one before it.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", url, wait, last)
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// helloRoundRobin sends GETs over HTTP/1.1 keep-alive and checks that the
// proxy spread them over the instances and stamped each with a fresh
// x-request-id and x-forwarded-* headers.
func (c *checker) helloRoundRobin(ctx context.Context, p printer) error {
	seen := map[string]int{}
	ids := map[string]bool{}
	for i := 1; i <= c.cfg.requests; i++ {
		reply, proto, err := c.getHello(ctx, c.http1, "/hello")
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		id := reply.Headers["x-request-id"]
		p("#%d %s -> %s %s  x-request-id=%s  x-forwarded-for=%s  x-forwarded-proto=%s",
			i, proto, reply.Service, reply.Instance, id, reply.Headers["x-forwarded-for"], reply.Headers["x-forwarded-proto"])
		if err := checkForwarded(reply); err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if ids[id] {
			return fmt.Errorf("request %d: x-request-id %q repeated", i, id)
		}
		ids[id] = true
		seen[reply.Instance]++
	}
	instances := make([]string, 0, len(seen))
	for inst, n := range seen {
		instances = append(instances, fmt.Sprintf("%s x%d", inst, n))
	}
	slices.Sort(instances)
	p("answered by %d instance(s): %s", len(seen), strings.Join(instances, ", "))
	if len(seen) < c.cfg.instances {
		return fmt.Errorf("round robin reached %d instance(s), want %d", len(seen), c.cfg.instances)
	}
	return nil
}

// helloH2C sends one GET with HTTP/2 prior knowledge (h2c): the listener's
// codec_type AUTO must detect the preface.
func (c *checker) helloH2C(ctx context.Context, p printer) error {
	reply, proto, err := c.getHello(ctx, c.h2c, "/hello/h2c")
	if err != nil {
		return err
	}
	p("%s -> %s %s (the app saw %s)  x-request-id=%s", proto, reply.Service, reply.Instance, reply.Proto, reply.Headers["x-request-id"])
	if proto != "HTTP/2.0" {
		return fmt.Errorf("answered over %s, want HTTP/2.0", proto)
	}
	return checkForwarded(reply)
}

func (c *checker) getHello(ctx context.Context, client *http.Client, path string) (helloReply, string, error) {
	var reply helloReply
	resp, body, err := c.do(ctx, client, http.MethodGet, path, nil)
	if err != nil {
		return reply, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return reply, resp.Proto, fmt.Errorf("status %d, want 200 (body %q)", resp.StatusCode, truncate(body))
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return reply, resp.Proto, fmt.Errorf("decode %q: %w", truncate(body), err)
	}
	if reply.Service == "" || reply.Instance == "" {
		return reply, resp.Proto, fmt.Errorf("reply %q names no service or instance", truncate(body))
	}
	return reply, resp.Proto, nil
}

func checkForwarded(reply helloReply) error {
	h := reply.Headers
	switch {
	case h["x-request-id"] == "":
		return errors.New("the app saw no x-request-id: the proxy must generate one")
	case h["x-forwarded-proto"] != "http":
		return fmt.Errorf("the app saw x-forwarded-proto %q, want \"http\"", h["x-forwarded-proto"])
	case h["x-forwarded-for"] == "":
		return errors.New("the app saw no x-forwarded-for (use_remote_address is on)")
	}
	return nil
}

// echoStream posts a body to /echo and checks it comes back byte for byte.
func (c *checker) echoStream(ctx context.Context, p printer) error {
	const size = 1 << 20
	payload := bytes.Repeat([]byte("outrigger demo! "), size/16)
	resp, body, err := c.do(ctx, c.http1, http.MethodPost, "/echo", bytes.NewReader(payload))
	if err != nil {
		return err
	}
	want, got := sha256.Sum256(payload), sha256.Sum256(body)
	p("POST /echo %d bytes -> %d %s, %d bytes back, sha256 %x...", len(payload), resp.StatusCode, resp.Proto, len(body), got[:6])
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, want 200", resp.StatusCode)
	}
	if want != got {
		return fmt.Errorf("echoed body differs: %d bytes, want %d identical bytes", len(body), len(payload))
	}
	return nil
}

// noRoute asks for a path no route matches: the proxy itself answers 404.
func (c *checker) noRoute(ctx context.Context, p printer) error {
	resp, body, err := c.do(ctx, c.http1, http.MethodGet, "/no-such-route", nil)
	if err != nil {
		return err
	}
	p("GET /no-such-route -> %d %q", resp.StatusCode, truncate(body))
	if resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("status %d, want 404", resp.StatusCode)
	}
	return nil
}

// directResponse asks for /status, which the proxy answers from config
// without any upstream.
func (c *checker) directResponse(ctx context.Context, p printer) error {
	resp, body, err := c.do(ctx, c.http1, http.MethodGet, "/status", nil)
	if err != nil {
		return err
	}
	p("GET /status -> %d %q", resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK || string(body) != statusBody {
		return fmt.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, statusBody)
	}
	return nil
}

// do sends one request to the proxy and reads the whole (small) reply.
func (c *checker) do(ctx context.Context, client *http.Client, method, path string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.cfg.proxy+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", "outrigger-democlient")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp, data, fmt.Errorf("read %s %s response: %w", method, path, err)
	}
	return resp, data, nil
}

func truncate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
