// Package status shows the progress of long work on stderr: a spinner on a
// terminal, plain lines otherwise. Each phase calls Start, defers End(false)
// and calls End(true) when it succeeds; End is idempotent, so the deferred
// call only marks failures.
package status

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Status reports one phase at a time to w.
type Status struct {
	w       io.Writer
	tty     bool
	mu      sync.Mutex
	message string
	started time.Time
	stop    chan struct{}
	done    chan struct{}
}

// New returns a Status writing to w; nil or io.Discard silences it.
func New(w io.Writer) *Status {
	s := &Status{w: w}
	if w == nil {
		s.w = io.Discard
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.tty = true
	}
	return s
}

var frames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Start begins a phase, ending any phase still running as a success.
func (s *Status) Start(message string) {
	s.End(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.message, s.started = message, time.Now()
	if !s.tty {
		fmt.Fprintf(s.w, " • %s ...\n", message)
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go s.spin(s.stop, s.done, message)
}

func (s *Status) spin(stop, done chan struct{}, message string) {
	defer close(done)
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for i := 0; ; i++ {
		fmt.Fprintf(s.w, "\r %s %s ", frames[i%len(frames)], message)
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

// End ends the running phase with a ✓ or a ✗; without one it does nothing.
func (s *Status) End(success bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.message == "" {
		return
	}
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
		fmt.Fprint(s.w, "\r")
	}
	mark := "✓"
	if !success {
		mark = "✗"
	}
	fmt.Fprintf(s.w, " %s %s (%s)\n", mark, s.message, round(time.Since(s.started)))
	s.message = ""
}

func round(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(100 * time.Millisecond)
	}
}
