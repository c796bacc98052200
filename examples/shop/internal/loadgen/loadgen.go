package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	shoppb "github.com/outrigger-mesh/outrigger/examples/shop/proto"
)

// window collects one second of results.
type window struct {
	mu        sync.Mutex
	latencies []time.Duration
	errors    map[string]int
	versions  map[string]int
	retries   int
}

func newWindow() *window {
	return &window{errors: map[string]int{}, versions: map[string]int{}}
}

func (w *window) ok(d time.Duration, version string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.latencies = append(w.latencies, d)
	w.versions[version]++
}

func (w *window) retried() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retries++
}

func (w *window) fail(kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errors[kind]++
}

// Summary is one second of load, as printed.
type Summary struct {
	Elapsed  time.Duration
	OK       int
	Errors   map[string]int
	P99      time.Duration
	Versions map[string]int
	// Retries is how many orders were sent again after a failure.
	Retries int
}

// take returns the window's summary and resets it.
func (w *window) take(elapsed time.Duration) Summary {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Summary{Elapsed: elapsed, OK: len(w.latencies), Errors: w.errors, Versions: w.versions, Retries: w.retries}
	if len(w.latencies) > 0 {
		slices.Sort(w.latencies)
		s.P99 = w.latencies[(len(w.latencies)*99+99)/100-1]
	}
	w.latencies, w.errors, w.versions, w.retries = w.latencies[:0], map[string]int{}, map[string]int{}, 0
	return s
}

// ErrorCount is the number of failed requests.
func (s Summary) ErrorCount() int {
	n := 0
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// String is the one-line summary: rate, errors, p99 and the share of
// payments versions among successful orders.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%3.0fs rate=%d/s errors=%d", s.Elapsed.Seconds(), s.OK+s.ErrorCount(), s.ErrorCount())
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, " (%s)", joinCounts(s.Errors, ""))
	}
	if s.Retries > 0 {
		fmt.Fprintf(&b, " retries=%d", s.Retries)
	}
	fmt.Fprintf(&b, " p99=%s", s.P99.Round(100*time.Microsecond))
	if s.OK > 0 {
		shares := map[string]int{}
		for v, n := range s.Versions {
			shares[v] = (n*100 + s.OK/2) / s.OK
		}
		fmt.Fprintf(&b, " payments %s", joinCounts(shares, "%"))
	}
	return b.String()
}

func joinCounts(m map[string]int, suffix string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d%s", k, m[k], suffix)
	}
	return strings.Join(parts, " ")
}

// client talks to the shop's public API.
type client struct {
	usersURL  string
	usersHost string
	token     string
	http      *http.Client
	orders    shoppb.OrdersClient
}

// createUser creates a user and returns its id.
func (c *client) createUser(ctx context.Context, n int) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": fmt.Sprintf("shopper %d", n), "email": fmt.Sprintf("shopper%d@example.com", n)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.usersURL+"/users", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("create user: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.usersHost != "" {
		req.Host = c.usersHost
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("create user: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create user: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &u); err != nil || u.ID == "" {
		return "", fmt.Errorf("create user: no id in %q", b)
	}
	return u.ID, nil
}

var items = []struct {
	name  string
	cents int64
}{{"tea", 450}, {"coffee", 380}, {"cake", 520}, {"sandwich", 790}, {"juice", 410}}

// newOrder picks a random item for a random user.
func newOrder(requestID string, userIDs []string) *shoppb.CreateOrderRequest {
	it := items[rand.IntN(len(items))]
	return &shoppb.CreateOrderRequest{
		RequestId: requestID, UserId: userIDs[rand.IntN(len(userIDs))], Item: it.name, AmountCents: it.cents,
	}
}

// order creates one order and returns the payments version that charged
// it.
func (c *client) order(ctx context.Context, req *shoppb.CreateOrderRequest) (string, error) {
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	o, err := c.orders.CreateOrder(ctx, req)
	if err != nil {
		return "", err
	}
	return o.GetPaymentsVersion(), nil
}

// orderWithRetries is order with up to retries further attempts of the
// same request, each
// with its own timeout, after UNAVAILABLE or DEADLINE_EXCEEDED. The request
// id stays the same, so orders returns the order a lost response was about
// instead of charging again.
func (c *client) orderWithRetries(ctx context.Context, req *shoppb.CreateOrderRequest, timeout time.Duration, retries int, w *window) (string, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		version, err := c.order(actx, req)
		cancel()
		code := status.Code(err)
		if err == nil || attempt >= retries || (code != codes.Unavailable && code != codes.DeadlineExceeded) {
			return version, err
		}
		w.retried()
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
}

// errorKind names an error for the summary: the gRPC code.
func errorKind(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	if err == context.DeadlineExceeded {
		return codes.DeadlineExceeded.String()
	}
	return "error"
}
