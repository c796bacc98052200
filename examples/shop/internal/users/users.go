package users

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// schema is the users table.
var schema = []string{`CREATE TABLE IF NOT EXISTS users (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL,
	created_at INTEGER NOT NULL
)`}

// cacheTTL is how long a cached user lives in Redis.
const cacheTTL = 10 * time.Minute

// User is a shop customer.
type User struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Email     string `json:"email"`
	CreatedAt int64  `json:"created_unix_ms"`
}

// errNotFound is returned for an unknown user id.
var errNotFound = errors.New("user not found")

// Cache results, as counted in users_cache_lookups_total and reported in
// the X-Cache response header.
const (
	cacheHit  = "hit"
	cacheMiss = "miss"
	// cacheError: Redis failed, the answer came from SQLite alone.
	cacheError = "error"
)

// service answers the users API from SQLite behind a Redis read-through
// cache. A failing Redis slows it down but does not stop it.
type service struct {
	db     *sql.DB
	cache  *redis.Client
	logger *slog.Logger

	lookups   *prometheus.CounterVec
	cacheErrs *prometheus.CounterVec
	tracer    trace.Tracer
}

func newService(db *sql.DB, cache *redis.Client, reg prometheus.Registerer, logger *slog.Logger) *service {
	s := &service{
		db:     db,
		cache:  cache,
		logger: logger,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "users_cache_lookups_total",
			Help: "User reads by cache result: hit, miss, or error (Redis failed; answered from SQLite).",
		}, []string{"result"}),
		cacheErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "users_cache_errors_total",
			Help: "Redis operations that failed, by operation.",
		}, []string{"op"}),
		tracer: otel.Tracer("outrigger/examples/shop/users"),
	}
	for _, r := range []string{cacheHit, cacheMiss, cacheError} {
		s.lookups.WithLabelValues(r)
	}
	reg.MustRegister(s.lookups, s.cacheErrs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "users_cache_hit_ratio",
		Help: "Share of user reads answered from Redis since start (hits / all reads).",
	}, s.hitRatio))
	return s
}

func (s *service) hitRatio() float64 {
	hits := counterValue(s.lookups.WithLabelValues(cacheHit))
	total := hits + counterValue(s.lookups.WithLabelValues(cacheMiss)) + counterValue(s.lookups.WithLabelValues(cacheError))
	if total == 0 {
		return 0
	}
	return hits / total
}

func (s *service) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /users", s.handleCreate)
	mux.HandleFunc("GET /users/{id}", s.handleGet)
}

// traced starts a server span from the request's W3C headers.
func (s *service) traced(r *http.Request, name string) (context.Context, trace.Span) {
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
}

func (s *service) handleCreate(w http.ResponseWriter, r *http.Request) {
	ctx, span := s.traced(r, "users.Create")
	defer span.End()
	var in struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode user: %w", err))
		return
	}
	in.Name, in.Email = strings.TrimSpace(in.Name), strings.TrimSpace(in.Email)
	if in.Name == "" || !strings.Contains(in.Email, "@") {
		writeError(w, http.StatusBadRequest, fmt.Errorf("user needs a name and an email with @ (got name %q, email %q)", in.Name, in.Email))
		return
	}
	u := User{ID: newID(), Name: in.Name, Email: in.Email, CreatedAt: time.Now().UnixMilli()}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)`,
		u.ID, u.Name, u.Email, u.CreatedAt); err != nil {
		s.logger.Error("store user", "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Errorf("store user: %w", err))
		return
	}
	writeJSON(w, http.StatusCreated, u)
}

func (s *service) handleGet(w http.ResponseWriter, r *http.Request) {
	ctx, span := s.traced(r, "users.Get")
	defer span.End()
	u, result, err := s.get(ctx, r.PathValue("id"))
	span.SetAttributes(attribute.String("cache", result))
	w.Header().Set("X-Cache", result)
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		s.logger.Error("read user", "err", err)
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, u)
	}
}

// get reads a user through the cache and returns the cache result.
func (s *service) get(ctx context.Context, id string) (User, string, error) {
	key := "user:" + id
	result := cacheMiss
	b, err := s.cache.Get(ctx, key).Bytes()
	switch {
	case err == nil:
		var u User
		if jerr := json.Unmarshal(b, &u); jerr == nil {
			s.lookups.WithLabelValues(cacheHit).Inc()
			return u, cacheHit, nil
		}
		// A corrupt entry is treated as a miss and overwritten below.
	case errors.Is(err, redis.Nil):
	default:
		s.cacheErrs.WithLabelValues("get").Inc()
		s.logger.Warn("redis get failed, reading SQLite", "err", err)
		result = cacheError
	}
	s.lookups.WithLabelValues(result).Inc()
	var u User
	err = s.db.QueryRowContext(ctx, `SELECT id, name, email, created_at FROM users WHERE id = ?`, id).
		Scan(&u.ID, &u.Name, &u.Email, &u.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, result, fmt.Errorf("%w: %q", errNotFound, id)
	}
	if err != nil {
		return User{}, result, fmt.Errorf("read user %q: %w", id, err)
	}
	if result == cacheMiss {
		b, _ := json.Marshal(u)
		if err := s.cache.Set(ctx, key, b, cacheTTL).Err(); err != nil {
			s.cacheErrs.WithLabelValues("set").Inc()
			s.logger.Warn("redis set failed", "err", err)
		}
	}
	return u, result, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
