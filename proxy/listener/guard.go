package listener

import (
	"net/http"
)

// guardHandler enforces the exact header size limit on HTTP/2 requests
// (net/http's own limit only bounds memory). HTTP/1.1 never reaches it: the
// h1 codec serves every HTTP/1.1 connection and enforces framing and limits
// itself.
type guardHandler struct {
	next           http.Handler
	maxHeaderBytes int
	stats          *stats
}

func (g *guardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && g.maxHeaderBytes > 0 && h2HeaderSize(r) > g.maxHeaderBytes {
		g.stats.headersTooLarge.Add(1)
		http.Error(w, "Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	g.next.ServeHTTP(w, r)
}

// h2HeaderSize approximates Envoy's header byte count for an HTTP/2 request:
// names and values of the regular and pseudo headers.
func h2HeaderSize(r *http.Request) int {
	n := len(":method") + len(r.Method) + len(":path") + len(r.RequestURI) +
		len(":authority") + len(r.Host) + len(":scheme") + len("https")
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}
