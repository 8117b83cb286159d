// Package console is the brand console: server-rendered pages under
// /console/ on the HTTP address (POSTBACK_HTTP_ADDR) where a brand signs in
// with its API token, configures its event notification postbacks, watches
// a live preview, sends a test postback and reads its delivery log.
//
// It never goes around the API: every read and change is a postback.v1 call
// made with the signed-in token as "authorization" metadata, over the
// connection it is given (the gateway passes an in-process one,
// gateway.Server.InProcess, which runs the same authentication, tenancy
// rules, validation and error bounds as the gRPC listener). So the console
// shows exactly what the API answers, errors at their fields included.
//
// Safety: the token lives only in the server-side session; the browser
// holds a random session id in an HttpOnly, SameSite=Strict cookie (Secure
// under TLS) that expires; every state change carries the session's CSRF
// token; every response has a strict Content-Security-Policy (scripts and
// styles from /console/assets/ only, embedded in the binary). Secret header
// values are never sent to the browser: the form shows them masked and an
// untouched secret is sent back to the API in its masked form, which the
// API keeps as stored.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/postback-dev/postback/pkg/auth"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Prefix is where the console is mounted on the HTTP mux.
const Prefix = "/console/"

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 8 * time.Hour

// cookieName is the session cookie's name.
const cookieName = "postback_console"

// contentSecurityPolicy allows nothing but the console's own embedded
// scripts, styles and images, same-origin fetches and forms.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// Options configure a Console.
type Options struct {
	// Conn serves the postback.v1 services (required).
	Conn grpc.ClientConnInterface
	// Auth identifies a token at sign-in (required): the same
	// authenticator the gRPC API uses.
	Auth *auth.Authenticator
	// Logger (nil: slog.Default()). Never given a token or a secret.
	Logger *slog.Logger
	// SessionTTL is how long a sign-in lasts (0: DefaultSessionTTL).
	SessionTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Console serves the brand console; it is an http.Handler for Prefix.
type Console struct {
	endpoints  postbackv1.EndpointServiceClient
	deliveries postbackv1.DeliveryServiceClient
	types      postbackv1.EventTypeServiceClient
	events     postbackv1.EventServiceClient
	auth       *auth.Authenticator
	log        *slog.Logger
	ttl        time.Duration
	now        func() time.Time
	pages      map[string]*template.Template
	mux        *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

// session is one sign-in. The token stays on the server.
type session struct {
	id       string
	token    string
	identity auth.Identity
	// account is the account the console acts for: the token's own, or the
	// one an operator picked ("" until it does).
	account string
	csrf    string
	expires time.Time
}

// New returns a console over o.Conn.
func New(o Options) (*Console, error) {
	if o.Conn == nil || o.Auth == nil {
		return nil, errors.New("console: Options.Conn and Options.Auth are required")
	}
	c := &Console{
		endpoints:  postbackv1.NewEndpointServiceClient(o.Conn),
		deliveries: postbackv1.NewDeliveryServiceClient(o.Conn),
		types:      postbackv1.NewEventTypeServiceClient(o.Conn),
		events:     postbackv1.NewEventServiceClient(o.Conn),
		auth:       o.Auth, log: o.Logger, ttl: o.SessionTTL, now: o.Now,
		sessions: map[string]*session{},
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.ttl <= 0 {
		c.ttl = DefaultSessionTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	assets, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	m := http.NewServeMux()
	m.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(assets)))
	m.HandleFunc("GET /console/sign-in", c.signInPage)
	m.HandleFunc("POST /console/sign-in", c.signIn)
	m.HandleFunc("POST /console/sign-out", c.withSession(c.signOut))
	m.HandleFunc("POST /console/account", c.withSession(c.pickAccount))
	m.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/notifications", http.StatusSeeOther)
	})
	m.HandleFunc("GET /console/notifications", c.withAccount(c.notificationsPage))
	m.HandleFunc("GET /console/notifications/{type}", c.withAccount(c.editPage))
	m.HandleFunc("POST /console/notifications/{type}", c.withAccount(c.editSubmit))
	m.HandleFunc("POST /console/notifications/{type}/preview", c.withAccount(c.previewFragment))
	m.HandleFunc("GET /console/deliveries", c.withAccount(c.deliveriesPage))
	m.HandleFunc("POST /console/deliveries/replay", c.withAccount(c.replay))
	m.HandleFunc("GET /console/deliveries/{id}", c.withAccount(c.deliveryPage))
	m.HandleFunc("POST /console/deliveries/{id}/retry", c.withAccount(c.retry))
	c.mux = m
	return c, nil
}

// ServeHTTP implements http.Handler, with the security headers on every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: Chrome then sends "Origin: null" on form posts
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

// newSecret is 32 random bytes, base64url.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("console: crypto/rand: %v", err)) // the system has no randomness: nothing safe to do
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// lookup returns the request's live session, or nil.
func (c *Console) lookup(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil {
		return nil
	}
	if !c.now().Before(s.expires) {
		delete(c.sessions, s.id)
		return nil
	}
	cp := *s
	return &cp
}

// setCookie writes the session cookie (maxAge < 0 deletes it).
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: servedOverTLS(r),
	})
}

// servedOverTLS reports whether the browser reached the console over TLS:
// directly, or through a proxy that ends TLS and says so (a spoofed header
// only makes the cookie stricter).
func servedOverTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// withSession requires a signed-in session, and a valid CSRF token on any
// request but GET and HEAD.
func (c *Console) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.lookup(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/sign-in", http.StatusSeeOther)
				return
			}
			http.Error(w, "signed out: sign in again", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			given := r.Header.Get("X-CSRF-Token")
			if given == "" {
				given = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(given), []byte(s.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	}
}

// withAccount is withSession for pages that act for an account: an
// operator who has not picked one is asked to.
func (c *Console) withAccount(h sessionHandler) http.HandlerFunc {
	return c.withSession(func(w http.ResponseWriter, r *http.Request, s *session) {
		if s.account == "" {
			c.render(w, r, http.StatusOK, "pick-account", s, map[string]any{"Title": "Pick an account"})
			return
		}
		h(w, r, s)
	})
}

// call is ctx carrying the session's token as the API's authorization metadata.
func (s *session) call(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, auth.MetadataKey, "Bearer "+s.token)
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if s := c.lookup(r); s != nil {
		http.Redirect(w, r, "/console/notifications", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "sign-in", nil, map[string]any{"Title": "Sign in"})
}

// sameOrigin reports whether a form post came from this console (a browser
// sends Origin on every POST).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	return o == "http://"+r.Host || o == "https://"+r.Host
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin sign-in refused", http.StatusForbidden)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	refuse := func(msg string) {
		c.render(w, r, http.StatusUnauthorized, "sign-in", nil, map[string]any{"Title": "Sign in", "Error": msg})
	}
	if token == "" {
		refuse("Enter your API token.")
		return
	}
	md := metadata.Pairs(auth.MetadataKey, "Bearer "+token)
	id, err := c.auth.Authenticate(metadata.NewIncomingContext(r.Context(), md))
	if err != nil {
		c.log.InfoContext(r.Context(), "console sign-in refused", "remote", r.RemoteAddr)
		refuse("That token is not valid.")
		return
	}
	s := &session{id: newSecret(), token: token, identity: id, csrf: newSecret(), expires: c.now().Add(c.ttl)}
	if !id.Operator() {
		s.account = id.Account
	}
	c.mu.Lock()
	for k, old := range c.sessions { // drop expired sign-ins as new ones come
		if !c.now().Before(old.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[s.id] = s
	c.mu.Unlock()
	c.setCookie(w, r, s.id, int(c.ttl/time.Second))
	c.log.InfoContext(r.Context(), "console sign-in", "caller", id)
	http.Redirect(w, r, "/console/notifications", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	c.mu.Lock()
	delete(c.sessions, s.id)
	c.mu.Unlock()
	c.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/console/sign-in", http.StatusSeeOther)
}

// pickAccount sets the account an operator acts for.
func (c *Console) pickAccount(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.identity.Operator() {
		http.Error(w, "only an operator token picks an account", http.StatusForbidden)
		return
	}
	account := strings.TrimSpace(r.PostFormValue("account"))
	if !validAccount(account) {
		c.render(w, r, http.StatusBadRequest, "pick-account", s, map[string]any{"Title": "Pick an account",
			"Error": "An account id is 1 to 64 of A-Z a-z 0-9 _ -."})
		return
	}
	c.mu.Lock()
	if live := c.sessions[s.id]; live != nil {
		live.account = account
	}
	c.mu.Unlock()
	http.Redirect(w, r, "/console/notifications", http.StatusSeeOther)
}

func validAccount(a string) bool {
	if a == "" || len(a) > 64 {
		return false
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
