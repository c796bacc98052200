package admin

import (
	"bufio"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// serveStats is Envoy's /stats in text: one "name{labels}: value" line per
// sample of the metrics /stats/prometheus serves, sorted by name then
// labels; a histogram shows its count and sum. ?filter=REGEX keeps the
// lines whose name matches (RE2, as Envoy's filter), ?usedonly drops
// zeros.
func (h *handler) serveStats(w http.ResponseWriter, r *http.Request) {
	var filter *regexp.Regexp
	if f := r.URL.Query().Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			http.Error(w, "filter: "+err.Error(), http.StatusBadRequest)
			return
		}
		filter = re
	}
	_, usedOnly := r.URL.Query()["usedonly"]
	families, err := h.b.Gatherer().Gather()
	if err != nil && len(families) == 0 {
		http.Error(w, "stats: "+err.Error(), http.StatusInternalServerError)
		return
	}
	type line struct{ key, value string }
	var lines []line
	add := func(name string, labels []*dto.LabelPair, v float64) {
		if usedOnly && v == 0 {
			return
		}
		var b strings.Builder
		b.WriteString(name)
		if len(labels) > 0 {
			b.WriteByte('{')
			for i, l := range labels {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(l.GetName())
				b.WriteString(`="`)
				b.WriteString(l.GetValue())
				b.WriteByte('"')
			}
			b.WriteByte('}')
		}
		lines = append(lines, line{b.String(), strconv.FormatFloat(v, 'f', -1, 64)})
	}
	for _, f := range families {
		name := f.GetName()
		if filter != nil && !filter.MatchString(name) {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				add(name, m.GetLabel(), m.GetCounter().GetValue())
			case m.GetGauge() != nil:
				add(name, m.GetLabel(), m.GetGauge().GetValue())
			case m.GetHistogram() != nil:
				add(name+"_count", m.GetLabel(), float64(m.GetHistogram().GetSampleCount()))
				add(name+"_sum", m.GetLabel(), m.GetHistogram().GetSampleSum())
			case m.GetUntyped() != nil:
				add(name, m.GetLabel(), m.GetUntyped().GetValue())
			}
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].key < lines[j].key })
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		_, _ = bw.WriteString(l.key)
		_, _ = bw.WriteString(": ")
		_, _ = bw.WriteString(l.value)
		_ = bw.WriteByte('\n')
	}
	_ = bw.Flush()
}
