package h1

import "time"

// The client-gone watch. Like net/http, a handler's context is canceled
// when the client closes the connection, detected by a 1-byte read once the
// request body is consumed. Unlike net/http it starts only for a handler
// still running after bgReadDelay (a per-connection timer, reset per
// request), so fast requests spawn no goroutine and touch no deadline.
const (
	bgAborting = bgRunning + 1 + iota // stopWatch asked the read to end
	bgFinished                        // the read returned; bgDone holds a token
)

// aLongTimeAgo makes a blocked read return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) armWatch() {
	if c.timer == nil {
		c.bgDone = make(chan struct{}, 1)
		c.timer = time.AfterFunc(bgReadDelay, c.watchFired)
		return
	}
	c.timer.Reset(bgReadDelay)
}

// watchFired runs on the timer's goroutine: it becomes the background read
// when the body is done, else the body's EOF starts one.
func (c *conn) watchFired() {
	c.mu.Lock()
	if c.bg != bgArmed {
		c.mu.Unlock()
		return
	}
	if !c.bodyDone {
		c.bg = bgWaiting
		c.mu.Unlock()
		return
	}
	c.bg = bgRunning
	c.mu.Unlock()
	c.backgroundRead()
}

// onBodyEOF is called once the request body has been read to its end.
func (c *conn) onBodyEOF() {
	c.mu.Lock()
	c.bodyDone = true
	start := c.bg == bgWaiting
	if start {
		c.bg = bgRunning
	}
	c.mu.Unlock()
	if start {
		go c.backgroundRead()
	}
}

func (c *conn) backgroundRead() {
	n, err := c.rwc.Read(c.cr.b[:])
	c.mu.Lock()
	if n == 1 {
		// The next pipelined request began; connReader returns it first.
		c.cr.hasByte = true
	}
	if err != nil && !(c.bg == bgAborting && isTimeout(err)) {
		c.gone = true
		if c.cancel != nil {
			c.cancel()
		}
	}
	c.bg = bgFinished
	c.mu.Unlock()
	c.bgDone <- struct{}{}
}

// stopWatch ends the watch for the current request and waits for a
// background read to return, so the serving goroutine owns the
// connection's reads again.
func (c *conn) stopWatch() {
	if c.timer == nil {
		return
	}
	c.timer.Stop()
	c.mu.Lock()
	st := c.bg
	switch st {
	case bgRunning:
		c.bg = bgAborting
	case bgFinished:
	default:
		c.bg = bgOff
	}
	c.mu.Unlock()
	switch st {
	case bgRunning:
		_ = c.rwc.SetReadDeadline(aLongTimeAgo)
		<-c.bgDone
		_ = c.rwc.SetReadDeadline(time.Time{})
	case bgFinished:
		<-c.bgDone
	}
	c.mu.Lock()
	c.bg = bgOff
	c.mu.Unlock()
}
