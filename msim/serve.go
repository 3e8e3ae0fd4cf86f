package msim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServeOptions configure a standalone simulator (`pbx2teams msim`).
type ServeOptions struct {
	Addr     string // listen address; default 127.0.0.1:8765
	Fixture  string // JSON fixture file; "" loads the built-in sandbox
	Generate int    // if > 0, also a generated tenant of this many users
	// BaseURL as clients reach it (behind a proxy); default http://{Addr}.
	BaseURL string
	Logger  *slog.Logger
	// Ready, if set, is called with the base URL once listening.
	Ready func(baseURL string, s *Sim)
}

// Serve runs a simulator until ctx ends.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8765"
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	base := o.BaseURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	s := New(Options{BaseURL: base, Logger: log})
	if o.Fixture == "" {
		err = s.LoadJSON(bytes.NewReader(sandboxJSON))
	} else {
		err = s.LoadFile(o.Fixture)
	}
	if err != nil {
		ln.Close()
		return err
	}
	if o.Generate > 0 {
		tid, err := s.Generate("", "", GenerateSpec{Users: o.Generate})
		if err != nil {
			ln.Close()
			return err
		}
		log.Info("msim: generated tenant", "tenant", tid, "users", o.Generate)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("msim: listening", "url", base, "tenants", s.TenantIDs())
	if o.Ready != nil {
		o.Ready(base, s)
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
