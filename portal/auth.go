package portal

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/secrets"
)

// signInCSRFCookie holds a random token that the sign-in form must echo, so
// that another site cannot sign a visitor in to an account of its choosing.
const signInCSRFCookie = "p2t_signin"

// csrfField is the name of the hidden form field carrying the CSRF token.
const csrfField = "csrf"

// validCSRF compares the form's token with the session's in constant time.
func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue(csrfField)
	if got == "" || want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

type signInData struct {
	Email string
	Next  string
	Ended bool
}

func (s *server) signInPage(w http.ResponseWriter, r *http.Request) {
	// Already signed in: go straight in.
	if c, err := r.Cookie(pbx2teams.SessionCookieName); err == nil && c.Value != "" {
		if _, _, err := s.svc.Authenticate(r.Context(), c.Value); err == nil {
			http.Redirect(w, r, firstLocal(r.URL.Query().Get("next"), "/"), http.StatusSeeOther)
			return
		}
	}
	q := r.URL.Query()
	s.renderSignIn(w, r, http.StatusOK, &page{Flash: notice(r)}, signInData{Next: localPath(q.Get("next")), Ended: q.Get("ended") != ""})
}

func (s *server) renderSignIn(w http.ResponseWriter, r *http.Request, status int, pg *page, d signInData) {
	token := ""
	if c, err := r.Cookie(signInCSRFCookie); err == nil && len(c.Value) >= 20 {
		token = c.Value
	} else {
		token = secrets.NewToken("")
		http.SetCookie(w, &http.Cookie{Name: signInCSRFCookie, Value: token, Path: "/signin", HttpOnly: true,
			Secure: s.opts.Secure, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	}
	pg.Title = "Sign in"
	pg.CSRF = token
	pg.Data = d
	s.render(w, r, nil, status, "signin.html", pg)
}

func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	email := strings.TrimSpace(r.PostFormValue("email"))
	d := signInData{Email: email, Next: localPath(r.PostFormValue("next"))}
	c, err := r.Cookie(signInCSRFCookie)
	if err != nil || !sameOrigin(r) || !validCSRF(r, c.Value) {
		s.renderSignIn(w, r, http.StatusForbidden, &page{Error: "The sign-in form expired. Check that your browser accepts cookies from this site, then try again."}, d)
		return
	}
	token, sess, err := s.svc.SignIn(r.Context(), email, r.PostFormValue("password"), clientAddr(r))
	if err != nil {
		pg := &page{}
		pg.setError(err)
		if pbx2teams.ErrorCode(err) == pbx2teams.EInternal {
			s.log.Error("portal: sign-in", "err", err)
		}
		s.renderSignIn(w, r, statusFor(pbx2teams.ErrorCode(err)), pg, d)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: pbx2teams.SessionCookieName, Value: token, Path: "/", HttpOnly: true,
		Secure: s.opts.Secure, SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt})
	http.SetCookie(w, &http.Cookie{Name: signInCSRFCookie, Value: "", Path: "/signin", HttpOnly: true,
		Secure: s.opts.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, firstLocal(d.Next, "/"), http.StatusSeeOther)
}

func (s *server) signOut(w http.ResponseWriter, r *http.Request, rq *req) {
	if c, err := r.Cookie(pbx2teams.SessionCookieName); err == nil {
		if err := s.svc.SignOut(r.Context(), c.Value); err != nil {
			s.log.Error("portal: sign out", "err", err)
		}
	}
	s.clearSessionCookie(w)
	http.Redirect(w, r, "/signin?done=signed-out", http.StatusSeeOther)
}

func (s *server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: pbx2teams.SessionCookieName, Value: "", Path: "/", HttpOnly: true,
		Secure: s.opts.Secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// clientAddr is the address sign-in attempts are counted against: the peer
// of the connection. Forwarding headers are not trusted, since any client
// can set them.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func firstLocal(p, fallback string) string {
	if p = localPath(p); p != "" {
		return p
	}
	return fallback
}
