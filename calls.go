package pbx2teams

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbx2teams/pbx2teams/secrets"
)

// Call log retention defaults (see Service.CallTraceRetention and
// Service.CallRecordRetention).
const (
	DefaultCallTraceRetention  = 7 * 24 * time.Hour
	DefaultCallRecordRetention = 90 * 24 * time.Hour
)

// Call log page sizes.
const (
	DefaultCallPageSize = 50
	MaxCallPageSize     = 200
)

// Trace limits: a trace is for reading by a person, so a runaway call (a
// re-INVITE loop, a flood of INFO) is cut rather than stored whole.
const (
	MaxTraceMessages    = 200
	MaxTraceMessageSize = 16 << 10
)

// CallResults lists every call result, in the order the portal offers them
// as filters.
var CallResults = []string{ResultAnswered, ResultBusy, ResultNoAnswer, ResultDeclined, ResultCancelled, ResultRejected, ResultFailed}

// ValidCallResult reports whether r is a known call result.
func ValidCallResult(r string) bool {
	for _, x := range CallResults {
		if x == r {
			return true
		}
	}
	return false
}

func (s *Service) callTraceRetention() time.Duration {
	if s.CallTraceRetention > 0 {
		return s.CallTraceRetention
	}
	return DefaultCallTraceRetention
}

func (s *Service) callRecordRetention() time.Duration {
	if s.CallRecordRetention > 0 {
		return s.CallRecordRetention
	}
	return DefaultCallRecordRetention
}

// Calls returns a page of a customer's call log, newest first, optionally
// only one user's calls or one result. Viewers may read it.
func (s *Service) Calls(ctx context.Context, p *Principal, q CallQuery) (*CallPage, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, q.AccountID, false)
	if err != nil {
		return nil, err
	}
	if q.Result != "" && !ValidCallResult(q.Result) {
		return nil, &Error{Code: EInvalid, Message: "Unknown call result " + quoteShort(q.Result) + "; use one of " + strings.Join(CallResults, ", ") + ".",
			Details: []ErrorDetail{{Field: "result", Reason: "one of " + strings.Join(CallResults, ", ")}}}
	}
	if q.Limit <= 0 {
		q.Limit = DefaultCallPageSize
	}
	if q.Limit > MaxCallPageSize {
		q.Limit = MaxCallPageSize
	}
	q.AccountID = acc.ID
	page, err := s.Store.Calls(ctx, q)
	if err != nil {
		return nil, err
	}
	if page.Calls == nil {
		page.Calls = []CallRecord{}
	}
	return page, nil
}

// Call returns one call of a customer's log.
func (s *Service) Call(ctx context.Context, p *Principal, accountID, id string) (*CallRecord, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	rec, err := s.Store.Call(ctx, acc.ID, id)
	if ErrorCode(err) == ENotFound {
		return nil, Errorf(ENotFound, "No such call in the call log of %s (calls are kept for %d days).", acc.Name, days(s.callRecordRetention()))
	}
	return rec, err
}

// CallTrace returns the SIP trace of one call of a customer's log. Traces
// are kept for a shorter time than records; an expired or never recorded
// trace is not found.
func (s *Service) CallTrace(ctx context.Context, p *Principal, accountID, id string) (*CallTrace, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	tr, err := s.Store.CallTrace(ctx, acc.ID, id)
	if ErrorCode(err) == ENotFound {
		return nil, Errorf(ENotFound, "No SIP trace is kept for this call: traces are kept for %d days, and only for calls that reached pbx2teams.", days(s.callTraceRetention()))
	}
	if err != nil {
		return nil, err
	}
	if tr.Messages == nil {
		tr.Messages = []TraceMessage{}
	}
	return tr, nil
}

// RecordCall stores a finished call and its trace (tr may be nil) in the
// call log. It is the SIP engine's path, with no principal. It assigns the
// record an ID if it has none, and removes credentials and media keys from
// the trace before storing it: digest Authorization headers and SDES
// a=crypto key parameters never reach the database.
func (s *Service) RecordCall(ctx context.Context, rec *CallRecord, tr *CallTrace) error {
	clean, err := s.prepareCall(rec, tr)
	if err != nil {
		return err
	}
	// The caller's trace is left as it was; the stored copy is the clean one.
	return s.Store.AppendCall(ctx, rec, clean)
}

// prepareCall checks and completes rec and returns the trace to store:
// a copy of tr with its credentials and media keys removed and its size
// bounded.
func (s *Service) prepareCall(rec *CallRecord, tr *CallTrace) (*CallTrace, error) {
	if rec == nil || rec.AccountID == "" {
		return nil, Errorf(EInvalid, "A call record needs its account.")
	}
	if rec.ID == "" {
		rec.ID = secrets.NewID("call_")
	}
	if rec.StartedAt.IsZero() {
		rec.StartedAt = s.now()
	}
	if rec.EndedAt.IsZero() || rec.EndedAt.Before(rec.StartedAt) {
		rec.EndedAt = rec.StartedAt
		if !rec.AnsweredAt.IsZero() && rec.AnsweredAt.After(rec.EndedAt) {
			rec.EndedAt = rec.AnsweredAt
		}
	}
	if rec.Result == "" {
		rec.Result = ResultFailed
	}
	if tr == nil {
		return nil, nil
	}
	clean := &CallTrace{CallRecordID: rec.ID, CallID: tr.CallID, Dropped: tr.Dropped}
	msgs := tr.Messages
	if len(msgs) > MaxTraceMessages {
		clean.Dropped += len(msgs) - MaxTraceMessages
		msgs = msgs[:MaxTraceMessages]
	}
	clean.Messages = make([]TraceMessage, len(msgs))
	for i, m := range msgs {
		m.Summary = scrubSIP(firstLine(m.Summary))
		m.Message = scrubSIP(m.Message)
		if len(m.Message) > MaxTraceMessageSize {
			m.Message = cutUTF8(m.Message, MaxTraceMessageSize) + "\r\n[cut: message longer than 16 KiB]"
		}
		clean.Messages[i] = m
	}
	return clean, nil
}

// CallLogWriter stores finished calls in the background, so that the SIP
// engine never waits for the database: CallEnded only queues the call
// (it fits sip/b2bua's Recorder). Calls queued together are written in one
// transaction. When the queue is full a call is dropped and counted, never
// blocking a call's goroutine.
type CallLogWriter struct {
	s       *Service
	mu      sync.RWMutex
	closed  bool
	queue   chan queuedCall
	done    chan struct{}
	dropped atomic.Int64
}

type queuedCall struct {
	rec *CallRecord
	tr  *CallTrace
}

// callLogBatch bounds the calls written in one transaction.
const callLogBatch = 256

// NewCallLogWriter starts a writer with room for queue calls waiting
// (default 10000). Close it to store what is queued and stop.
func (s *Service) NewCallLogWriter(queue int) *CallLogWriter {
	if queue <= 0 {
		queue = 10000
	}
	w := &CallLogWriter{s: s, queue: make(chan queuedCall, queue), done: make(chan struct{})}
	go w.run()
	return w
}

// CallEnded queues a finished call and its trace (tr may be nil) for the
// call log. The writer owns rec and tr from now on.
func (w *CallLogWriter) CallEnded(rec *CallRecord, tr *CallTrace) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed || rec == nil {
		return
	}
	select {
	case w.queue <- queuedCall{rec, tr}:
	default:
		if w.dropped.Add(1)%1000 == 1 {
			w.s.Log.Warn("call log: queue full, calls not recorded", "dropped", w.dropped.Load())
		}
	}
}

// Dropped is how many calls were not recorded because the queue was full.
func (w *CallLogWriter) Dropped() int64 { return w.dropped.Load() }

// Close stores the calls already queued and stops the writer.
func (w *CallLogWriter) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *CallLogWriter) run() {
	defer close(w.done)
	batch := make([]queuedCall, 0, callLogBatch)
	for first := range w.queue {
		batch = append(batch[:0], first)
	more:
		for len(batch) < callLogBatch {
			select {
			case c, ok := <-w.queue:
				if !ok {
					break more
				}
				batch = append(batch, c)
			default:
				break more
			}
		}
		w.write(batch)
	}
}

// write stores a batch in one transaction; if that fails (one bad call
// spoils the batch), each call is tried on its own.
func (w *CallLogWriter) write(batch []queuedCall) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ready := make([]queuedCall, 0, len(batch))
	for _, c := range batch {
		tr, err := w.s.prepareCall(c.rec, c.tr)
		if err != nil {
			w.s.Log.Debug("call log: call not recorded", "call", c.rec.ID, "err", err)
			continue
		}
		ready = append(ready, queuedCall{c.rec, tr})
	}
	if len(ready) == 0 {
		return
	}
	err := w.s.Store.InTx(ctx, func(q Queries) error {
		for _, c := range ready {
			if err := q.AppendCall(ctx, c.rec, c.tr); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(ready) == 1 {
		if err != nil {
			w.s.Log.Error("call log: call not recorded", "call", ready[0].rec.ID, "account", ready[0].rec.AccountID, "err", err)
		}
		return
	}
	for _, c := range ready {
		if err := w.s.Store.AppendCall(ctx, c.rec, c.tr); err != nil {
			w.s.Log.Error("call log: call not recorded", "call", c.rec.ID, "account", c.rec.AccountID, "err", err)
		}
	}
}

// PruneCalls drops the traces of calls that ended more than the trace
// retention before now and the records of calls that ended more than the
// record retention before now. Run it periodically (e.g. hourly).
func (s *Service) PruneCalls(ctx context.Context, now time.Time) (traces, records int, err error) {
	if traces, err = s.Store.DeleteCallTracesBefore(ctx, now.Add(-s.callTraceRetention())); err != nil {
		return 0, 0, err
	}
	if records, err = s.Store.DeleteCallsBefore(ctx, now.Add(-s.callRecordRetention())); err != nil {
		return traces, 0, err
	}
	if traces > 0 || records > 0 {
		s.Log.Info("call log pruned", "traces", traces, "records", records)
	}
	return traces, records, nil
}

// Patterns of secrets inside SIP text: the value of a digest
// Authorization or Proxy-Authorization header (its response is derived
// from the password) and the key of an SDES a=crypto line.
var (
	authHeaderRE = regexp.MustCompile(`(?im)^((?:proxy-)?authorization)[ \t]*:[^\r\n]*`)
	cryptoKeyRE  = regexp.MustCompile(`(?i)(inline:)[^\s|]+`)
)

// scrubSIP removes credentials and media keys from a SIP message.
func scrubSIP(m string) string {
	if m == "" {
		return m
	}
	m = authHeaderRE.ReplaceAllString(m, "$1: [removed]")
	return cryptoKeyRE.ReplaceAllString(m, "${1}[removed]")
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// cutUTF8 cuts s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func days(d time.Duration) int { return int((d + 12*time.Hour) / (24 * time.Hour)) }

// quoteShort quotes user input for a message, cut to a readable length.
func quoteShort(s string) string {
	return `"` + cutUTF8(s, 40) + `"`
}
