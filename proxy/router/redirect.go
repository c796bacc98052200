package router

import (
	"net/http"
	"strconv"
	"strings"
)

// StatusCode is the redirect's response code, 301 when unset (Envoy's
// MOVED_PERMANENTLY default).
func (rd *Redirect) StatusCode() int {
	if rd.Status == 0 {
		return http.StatusMovedPermanently
	}
	return rd.Status
}

// Location builds the Location header for r the way Envoy's RedirectAction
// does. matchedPrefix is the part of the request path the route matched
// (Route.MatchedPrefix; Route.RedirectLocation works it out); it is only
// used by prefix_rewrite. tls says whether r arrived over TLS, which is the
// scheme kept when the redirect does not set one.
//
//   - scheme: scheme_redirect, else https when https_redirect, else the
//     request's.
//   - host: host_redirect, else the request's authority, whose port is
//     dropped when port_redirect is set or when the scheme changes away from
//     the port's default (http on :80 -> https loses ":80").
//   - port: ":port_redirect" when set (replacing any port of host_redirect).
//   - path: path_redirect (a query in it wins and is never stripped; else
//     the request's query is kept), or prefix_rewrite in place of
//     matchedPrefix, or the request's path; strip_query drops the query.
func (rd *Redirect) Location(r *http.Request, matchedPrefix string, tls bool) string {
	reqScheme := "http"
	if tls {
		reqScheme = "https"
	}
	scheme := reqScheme
	switch {
	case rd.SchemeRedirect != "":
		scheme = rd.SchemeRedirect
	case rd.HTTPSRedirect:
		scheme = "https"
	}
	port := ""
	if rd.PortRedirect != 0 {
		port = ":" + strconv.FormatUint(uint64(rd.PortRedirect), 10)
	}
	host := rd.HostRedirect
	switch {
	case host == "":
		host = redirectHost(authority(r), scheme, reqScheme, port != "")
	case port != "":
		host = stripPort(host)
	}

	path := RequestPath(r)
	query := ""
	if r.URL != nil && (r.URL.RawQuery != "" || r.URL.ForceQuery) {
		query = "?" + r.URL.RawQuery
	}
	keepQuery := false // a query written into path_redirect survives strip_query
	var final string
	switch {
	case rd.PathRedirect != "":
		if strings.IndexByte(rd.PathRedirect, '?') >= 0 {
			final, keepQuery = rd.PathRedirect, true
		} else {
			final = rd.PathRedirect + query
		}
	case rd.PrefixRewrite != "" && hasPrefix(path, matchedPrefix, true):
		final = rd.PrefixRewrite + path[len(matchedPrefix):] + query
	default:
		final = path + query
	}
	if !strings.HasPrefix(final, "/") {
		final = "/" + final
	}
	if rd.StripQuery && !keepQuery {
		if i := strings.IndexByte(final, '?'); i >= 0 {
			final = final[:i]
		}
	}
	return scheme + "://" + host + port + final
}

// redirectHost is Envoy's processRequestHost: the request's authority,
// without its port when a new port is given or when the scheme changes and
// the port was the old scheme's default.
func redirectHost(host, newScheme, reqScheme string, newPort bool) string {
	i := portStart(host)
	if i < 0 {
		return host
	}
	remove := newPort
	if !strings.EqualFold(newScheme, reqScheme) {
		p := host[i:]
		remove = remove || (reqScheme == "https" && p == ":443") || (reqScheme == "http" && p == ":80")
	}
	if remove {
		return host[:i]
	}
	return host
}
