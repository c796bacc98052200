package main

import (
	"context"
	"strings"
	"testing"
)

// The floor subcommand needs an upstream and a listen address it can bind.
func TestRunFloorRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "--upstream is required"},
		{[]string{"--upstream", "127.0.0.1:1", "--listen", "not an address"}, 1, "not an address"},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
		{[]string{"--lean"}, 2, "--upstream is required"},
		{[]string{"--lean", "--upstream", "127.0.0.1:1", "--listen", "not an address"}, 1, "not an address"},
	} {
		var stderr strings.Builder
		if code := run(context.Background(), append([]string{"floor"}, tt.args...), &strings.Builder{}, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("floor %v: exit %d, %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
	}
}
