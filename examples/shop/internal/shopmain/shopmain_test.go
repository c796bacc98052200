package shopmain

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
)

func TestEnv(t *testing.T) {
	t.Setenv("SHOP_X", "")
	if Env("SHOP_X", "d") != "d" {
		t.Error("empty env should fall back to the default")
	}
	t.Setenv("SHOP_X", "v")
	if Env("SHOP_X", "d") != "v" {
		t.Error("env should win over the default")
	}
	t.Setenv("SHOP_F", "0.5")
	t.Setenv("SHOP_D", "2s")
	if f, err := EnvFloat("SHOP_F", 1); err != nil || f != 0.5 {
		t.Errorf("EnvFloat = %v, %v", f, err)
	}
	if d, err := EnvDuration("SHOP_D", 0); err != nil || d != 2*time.Second {
		t.Errorf("EnvDuration = %v, %v", d, err)
	}
	t.Setenv("SHOP_F", "x")
	t.Setenv("SHOP_D", "x")
	if _, err := EnvFloat("SHOP_F", 1); err == nil || !strings.Contains(err.Error(), "SHOP_F") {
		t.Errorf("EnvFloat(bad) = %v", err)
	}
	if _, err := EnvDuration("SHOP_D", 0); err == nil || !strings.Contains(err.Error(), "SHOP_D") {
		t.Errorf("EnvDuration(bad) = %v", err)
	}
	t.Setenv("SHOP_F", "")
	t.Setenv("SHOP_D", "")
	if f, _ := EnvFloat("SHOP_F", 1); f != 1 {
		t.Errorf("EnvFloat default = %v", f)
	}
	if d, _ := EnvDuration("SHOP_D", time.Second); d != time.Second {
		t.Errorf("EnvDuration default = %v", d)
	}
}

func TestAdminAndServeHTTP(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sick error
	mux := http.NewServeMux()
	HandleAdmin(mux, NewRegistry(), func(context.Context) error { return sick })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHTTP(ctx, ln, mux, slog.New(slog.DiscardHandler)) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	sick = errors.New("database gone")
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "database gone") {
		t.Errorf("/healthz when sick = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeHTTP = %v", err)
	}
	// A listener that fails is an error naming the address.
	ln2, _ := Listen("127.0.0.1:0")
	_ = ln2.Close()
	if err := ServeHTTP(context.Background(), ln2, mux, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "serve http") {
		t.Errorf("ServeHTTP on a closed listener = %v", err)
	}
	if _, err := Listen("256.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "256.0.0.1:1") {
		t.Errorf("Listen bad = %v", err)
	}
}

func TestServeGRPC(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeGRPC(ctx, ln, grpc.NewServer(), slog.New(slog.DiscardHandler)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeGRPC = %v", err)
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	_ = ln2.Close()
	if err := ServeGRPC(context.Background(), ln2, grpc.NewServer(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "serve grpc") {
		t.Errorf("ServeGRPC on a closed listener = %v", err)
	}
}
