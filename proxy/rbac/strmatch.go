package rbac

import (
	"errors"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// stringMatcher is a compiled Envoy StringMatcher — the router's
// (router.CompileString), so RBAC matches strings exactly as routes do —
// with, for principal names, a cache of a regex's answers.
type stringMatcher struct {
	m     *router.CompiledString
	cache *regexCache // set for principal-name regexes
}

func compileString(field string, sm *router.StringMatcher) (*stringMatcher, error) {
	m, err := router.CompileString(field, sm)
	if err != nil {
		var ce *router.ConfigError
		if errors.As(err, &ce) {
			return nil, &ConfigError{Field: ce.Field, Msg: ce.Msg, Err: ce.Err}
		}
		return nil, err
	}
	return &stringMatcher{m: m}, nil
}

func (m *stringMatcher) match(s string) bool {
	if m.cache != nil {
		return m.cache.match(s, m.m.Match)
	}
	return m.m.Match(s)
}
