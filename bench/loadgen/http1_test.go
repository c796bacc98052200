package loadgen

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantKeep   bool
		wantStatus string // non-empty: a *StatusError with this status
		wantErr    bool
		wantRest   string // what must remain unread (the next response)
	}{
		{name: "content length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", wantKeep: true, wantRest: "NEXT"},
		{name: "header names any case", in: "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: 2\r\n\r\nokNEXT", wantKeep: true, wantRest: "NEXT"},
		{name: "chunked with trailer", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nGrpc-Status: 0\r\n\r\nNEXT", wantKeep: true, wantRest: "NEXT"},
		{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\nNEXT", wantKeep: true, wantRest: "NEXT"},
		{name: "connection close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", wantKeep: false},
		{name: "http/1.0 without keep-alive", in: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", wantKeep: false},
		{name: "body until close", in: "HTTP/1.1 200 OK\r\n\r\nall of it", wantKeep: false},
		{name: "server error keeps the connection", in: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nno!NEXT", wantKeep: true, wantStatus: "503", wantRest: "NEXT"},
		{name: "garbage status line", in: "SSH-2.0-OpenSSH\r\n\r\n", wantErr: true},
		{name: "bad content length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", wantErr: true},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: true},
		{name: "chunk without CRLF", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", wantErr: true},
		{name: "truncated body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			keep, err := readResponse(br)
			var se *StatusError
			switch {
			case tt.wantStatus != "":
				if !errors.As(err, &se) || se.Status != tt.wantStatus {
					t.Fatalf("err = %v, want status %s", err, tt.wantStatus)
				}
			case (err != nil) != tt.wantErr:
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if keep != tt.wantKeep {
				t.Errorf("keep = %v, want %v", keep, tt.wantKeep)
			}
			rest, _ := br.Peek(br.Buffered())
			if string(rest) != tt.wantRest {
				t.Errorf("left unread %q, want %q", rest, tt.wantRest)
			}
		})
	}
}
