package dns

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// forward relays req to the upstreams in turn and returns the first answer
// one gives, whatever its rcode; SERVFAIL when there are none or none
// answers.
func (s *Server) forward(req *dns.Msg) *dns.Msg {
	var errs []error
	for _, up := range s.cfg.Upstreams {
		resp, err := s.exchange(req, up)
		if err == nil {
			return resp
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		s.logger.V(2).Info("Forwarding a DNS query failed", "name", req.Question[0].Name, "err", errors.Join(errs...))
	}
	m := new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// exchange asks one upstream over UDP, and again over TCP when the answer
// did not fit.
func (s *Server) exchange(req *dns.Msg, upstream string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(s.base, s.upstreamTimeout)
	defer cancel()
	// A fresh ID per exchange: the client's is the client's, and a
	// guessable one would help spoof answers into the relay.
	q := req.Copy()
	q.Id = dns.Id()
	var resp *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: s.upstreamTimeout}
		resp, _, err = c.ExchangeContext(ctx, q, upstream)
		if err != nil {
			return nil, fmt.Errorf("asking %s over %s: %w", upstream, network, err)
		}
		if !resp.Truncated {
			break
		}
	}
	return resp, nil
}
