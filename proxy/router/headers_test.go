package router

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

func set(name, value string) HeaderValue { return HeaderValue{Name: name, Value: value} }
func appendHV(name, value string) HeaderValue {
	return HeaderValue{Name: name, Value: value, Append: true}
}
func absent(name, value string) HeaderValue {
	return HeaderValue{Name: name, Value: value, AddIfAbsent: true}
}

func TestApplyRequestEdits(t *testing.T) {
	tests := []struct {
		name   string
		start  http.Header
		levels []*HeaderEdits // most specific first, as callers pass them
		want   http.Header
	}{
		{
			name: "least specific overwrite wins",
			levels: []*HeaderEdits{
				{RequestAdd: []HeaderValue{set("x-a", "route")}},
				{RequestAdd: []HeaderValue{set("x-a", "vhost")}},
				{RequestAdd: []HeaderValue{set("x-a", "config")}},
			},
			want: http.Header{"X-A": {"config"}},
		},
		{
			name:  "appends accumulate in level order",
			start: http.Header{"X-A": {"orig"}},
			levels: []*HeaderEdits{
				{RequestAdd: []HeaderValue{appendHV("x-a", "route")}},
				{RequestAdd: []HeaderValue{appendHV("x-a", "vhost")}},
				{RequestAdd: []HeaderValue{appendHV("x-a", "config")}},
			},
			want: http.Header{"X-A": {"orig", "route", "vhost", "config"}},
		},
		{
			name: "a later level removes what an earlier one added",
			levels: []*HeaderEdits{
				{RequestAdd: []HeaderValue{set("x-a", "route")}},
				{RequestRemove: []string{"x-a"}},
			},
			want: http.Header{},
		},
		{
			name:   "remove runs before add within a level",
			start:  http.Header{"X-A": {"old1", "old2"}},
			levels: []*HeaderEdits{{RequestRemove: []string{"X-A"}, RequestAdd: []HeaderValue{appendHV("x-a", "new")}}},
			want:   http.Header{"X-A": {"new"}},
		},
		{
			name:   "overwrite replaces every value",
			start:  http.Header{"X-A": {"1", "2"}},
			levels: []*HeaderEdits{{RequestAdd: []HeaderValue{set("x-a", "3")}}},
			want:   http.Header{"X-A": {"3"}},
		},
		{
			name:   "overwrites before appends within a level",
			start:  http.Header{"X-A": {"old"}},
			levels: []*HeaderEdits{{RequestAdd: []HeaderValue{appendHV("x-a", "app"), set("x-a", "set")}}},
			want:   http.Header{"X-A": {"set", "app"}},
		},
		{
			name:   "add if absent when present",
			start:  http.Header{"X-A": {"keep"}},
			levels: []*HeaderEdits{{RequestAdd: []HeaderValue{absent("x-a", "new")}}},
			want:   http.Header{"X-A": {"keep"}},
		},
		{
			name:   "add if absent when absent",
			levels: []*HeaderEdits{{RequestAdd: []HeaderValue{absent("x-a", "new")}}},
			want:   http.Header{"X-A": {"new"}},
		},
		{
			name: "add if absent sees the headers before the level's adds",
			levels: []*HeaderEdits{{RequestAdd: []HeaderValue{
				set("x-a", "set"), absent("x-a", "absent"),
			}}},
			want: http.Header{"X-A": {"set", "absent"}},
		},
		{
			name: "add if absent sees earlier levels",
			levels: []*HeaderEdits{
				{RequestAdd: []HeaderValue{set("x-a", "route")}},
				{RequestAdd: []HeaderValue{absent("x-a", "vhost")}},
			},
			want: http.Header{"X-A": {"route"}},
		},
		{
			name:   "empty values are skipped",
			start:  http.Header{"X-A": {"keep"}},
			levels: []*HeaderEdits{{RequestAdd: []HeaderValue{set("x-a", ""), appendHV("x-b", ""), absent("x-c", "")}}},
			want:   http.Header{"X-A": {"keep"}},
		},
		{
			name:   "nil levels are skipped and names canonicalised",
			levels: []*HeaderEdits{nil, {RequestAdd: []HeaderValue{set("x-lower-case", "v")}}, nil},
			want:   http.Header{"X-Lower-Case": {"v"}},
		},
		{
			name:   "response edits are not request edits",
			start:  http.Header{"X-A": {"keep"}},
			levels: []*HeaderEdits{{ResponseRemove: []string{"x-a"}, ResponseAdd: []HeaderValue{set("x-b", "v")}}},
			want:   http.Header{"X-A": {"keep"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.start.Clone()
			if h == nil {
				h = http.Header{}
			}
			ApplyRequestEdits(h, tt.levels...)
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("headers = %v, want %v", h, tt.want)
			}
		})
	}
}

func TestApplyResponseEdits(t *testing.T) {
	h := http.Header{"Server": {"upstream"}, "X-Keep": {"1"}}
	ApplyResponseEdits(h,
		&HeaderEdits{ResponseRemove: []string{"server"}, RequestAdd: []HeaderValue{set("x-req", "no")}},
		&HeaderEdits{ResponseAdd: []HeaderValue{appendHV("x-via", "outrigger")}},
	)
	want := http.Header{"X-Keep": {"1"}, "X-Via": {"outrigger"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("headers = %v, want %v", h, want)
	}
}

func TestApplyEditsManyAddIfAbsent(t *testing.T) {
	// More than 64 entries in one level takes the slice path.
	var adds []HeaderValue
	for i := 0; i < 70; i++ {
		adds = append(adds, absent(fmt.Sprintf("x-%d", i), "v"))
	}
	adds = append(adds, absent("x-0", "dup"))
	h := http.Header{"X-69": {"orig"}}
	ApplyRequestEdits(h, &HeaderEdits{RequestAdd: adds})
	if got := h.Values("X-0"); !reflect.DeepEqual(got, []string{"v", "dup"}) {
		t.Errorf("X-0 = %v (both were absent before the level)", got)
	}
	if got := h.Values("X-69"); !reflect.DeepEqual(got, []string{"orig"}) {
		t.Errorf("X-69 = %v, want orig only", got)
	}
	if len(h) != 70 {
		t.Errorf("got %d headers, want 70", len(h))
	}
}

func TestTableEditOrder(t *testing.T) {
	level := func(v string) HeaderEdits {
		return HeaderEdits{
			RequestAdd:  []HeaderValue{set("x-winner", v), appendHV("x-trail", v)},
			ResponseAdd: []HeaderValue{set("x-winner", v), appendHV("x-trail", v)},
		}
	}
	tbl := newTable(t, &Config{
		Headers: level("config"),
		VirtualHosts: []VirtualHost{{
			Domains: []string{"*"},
			Headers: level("vhost"),
			Routes: []Route{{
				Headers: level("route"),
				Forward: &ForwardAction{
					WeightedClusters: []WeightedCluster{{Name: "a", Weight: 1, Headers: level("cluster")}},
					TotalWeight:      1,
				},
			}},
		}},
	})
	rt, vh := tbl.Match(req(t, "GET", "/"))
	_, wc := rt.Forward.PickCluster(0)
	want := http.Header{"X-Winner": {"config"}, "X-Trail": {"cluster", "route", "vhost", "config"}}

	reqH := http.Header{}
	tbl.EditRequest(reqH, vh, rt, wc)
	if !reflect.DeepEqual(reqH, want) {
		t.Errorf("request headers = %v, want %v", reqH, want)
	}
	respH := http.Header{}
	tbl.EditResponse(respH, vh, rt, wc)
	if !reflect.DeepEqual(respH, want) {
		t.Errorf("response headers = %v, want %v", respH, want)
	}
	// The variadic form with the same order agrees.
	viaFunc := http.Header{}
	ApplyRequestEdits(viaFunc, &wc.Headers, &rt.Headers, &vh.Headers, tbl.Headers())
	if !reflect.DeepEqual(viaFunc, want) {
		t.Errorf("ApplyRequestEdits = %v, want %v", viaFunc, want)
	}
	// Without a weighted cluster or route only the outer levels apply.
	outer := http.Header{}
	tbl.EditRequest(outer, vh, nil, nil)
	if want := (http.Header{"X-Winner": {"config"}, "X-Trail": {"vhost", "config"}}); !reflect.DeepEqual(outer, want) {
		t.Errorf("outer levels = %v, want %v", outer, want)
	}
}
