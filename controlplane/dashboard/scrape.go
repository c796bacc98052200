package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/hashicorp/consul/api"
)

// maxScrapeBytes bounds one sidecar's metrics page.
const maxScrapeBytes = 4 << 20

// scrape fetches and parses one sidecar's /stats/prometheus.
func (d *Dashboard) scrape(ctx context.Context, admin string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, d.o.ScrapeTimeout)
	defer cancel()
	url := "http://" + admin + "/stats/prometheus"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", url, err)
	}
	resp, err := d.o.Client.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	s, err := parseSample(io.LimitReader(resp.Body, maxScrapeBytes), d.o.Listener)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", url, err)
	}
	return s, nil
}

// consulCatalog reads every service's instances from Consul's health API.
type consulCatalog struct {
	client *api.Client
	// parallel bounds the concurrent per-service queries.
	parallel int
}

// ConsulCatalog is a Catalog over Consul's HTTP API: /v1/catalog/services,
// then /v1/health/service/<name> for each name (all, not only passing).
func ConsulCatalog(c *api.Client) Catalog { return consulCatalog{client: c, parallel: 8} }

// Entries implements Catalog.
func (c consulCatalog) Entries(ctx context.Context) ([]*api.ServiceEntry, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	names, _, err := c.client.Catalog().Services(q)
	if err != nil {
		return nil, fmt.Errorf("consul catalog services: %w", err)
	}
	var (
		mu   sync.Mutex
		out  []*api.ServiceEntry
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, c.parallel)
	)
	for name := range names {
		if name == "consul" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			entries, _, err := c.client.Health().Service(name, "", false, q)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("consul health service %q: %w", name, err))
				return
			}
			out = append(out, entries...)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}
