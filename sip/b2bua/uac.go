package b2bua

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
)

// errNoResponse is an INVITE attempt that got no provisional response in
// time: the next target is tried.
var errNoResponse = errors.New("no response")

// attemptResult is the outcome of one INVITE transaction.
type attemptResult struct {
	res     *sip.Response // final response, nil on error
	ringing bool          // a provisional response other than 100 arrived
	err     error         // transport failure, timeout, or ctx ended
}

// attempt sends one INVITE on a UAC leg and waits for its final response.
// onProvisional sees every 1xx but 100. Until any provisional response
// arrives, the attempt gives up after firstResponse. When ctx ends, the
// INVITE is cancelled (CANCEL after a provisional response) and a 2xx
// that crosses the CANCEL is acknowledged and hung up.
func (l *leg) attempt(ctx context.Context, req *sip.Request, firstResponse time.Duration, onProvisional func(*sip.Response)) attemptResult {
	l.mu.Lock()
	l.out = req
	l.mu.Unlock()
	l.c.trace(l, "out", req)
	if req.IsInvite() {
		l.c.noteSent(l, req.Body())
	}
	sent := time.Now()
	tx, err := l.s.request(context.Background(), req)
	if err != nil {
		return attemptResult{err: err}
	}
	l.mu.Lock()
	l.otx = tx
	l.mu.Unlock()
	defer func() {
		w := time.Since(sent)
		l.c.mu.Lock()
		l.c.waited += w
		l.c.mu.Unlock()
	}()
	// The transaction is left to its timers once a final response came
	// (ACK retransmission for non-2xx, 2xx retransmissions); it is cut
	// short only when we give up on it.
	var r attemptResult
	anyResponse := false
	first := time.NewTimer(firstResponse)
	defer first.Stop()
	for {
		select {
		case res := <-tx.Responses():
			l.c.trace(l, "in", res)
			if !anyResponse {
				anyResponse = true
				first.Stop()
			}
			if res.IsProvisional() {
				if res.StatusCode != 100 {
					r.ringing = true
					if onProvisional != nil {
						onProvisional(res)
					}
				}
				continue
			}
			r.res = res
			if res.IsSuccess() {
				l.watch2xxRetransmissions(tx)
			}
			return r
		case <-tx.Done():
			r.err = tx.Err()
			if r.err == nil {
				r.err = errNoResponse
			}
			return r
		case <-first.C:
			tx.Terminate()
			r.err = errNoResponse
			return r
		case <-ctx.Done():
			r.err = ctx.Err()
			if !anyResponse {
				// RFC 3261 §9.1: no CANCEL before a provisional response;
				// wait briefly for one, or give up on the transaction.
				select {
				case res := <-tx.Responses():
					l.c.trace(l, "in", res)
					if res.IsSuccess() {
						l.byeCrossed(res, tx)
						return r
					}
					if !res.IsProvisional() {
						r.res = res
						return r
					}
				case <-time.After(sip.T1):
					tx.Terminate()
					return r
				}
			}
			go l.cancel("")
			wait := time.NewTimer(32 * time.Second)
			defer wait.Stop()
			for {
				select {
				case res := <-tx.Responses():
					l.c.trace(l, "in", res)
					if res.IsProvisional() {
						continue
					}
					if res.IsSuccess() {
						l.byeCrossed(res, tx)
					}
					return r
				case <-tx.Done():
					return r
				case <-wait.C:
					tx.Terminate()
					return r
				}
			}
		}
	}
}

// byeCrossed acknowledges a 2xx that crossed our CANCEL and ends that
// dialog at once.
func (l *leg) byeCrossed(res *sip.Response, tx sip.ClientTransaction) {
	l.established(res)
	l.ackFor(res)
	go l.bye()
}

// watch2xxRetransmissions answers retransmissions of the 2xx to our
// INVITE (our ACK was lost) with the ACK again.
func (l *leg) watch2xxRetransmissions(tx sip.ClientTransaction) {
	tx.OnRetransmission(func(res *sip.Response) {
		if res.IsSuccess() {
			l.ackFor(res)
		}
	})
}
