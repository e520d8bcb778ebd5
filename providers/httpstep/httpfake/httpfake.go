// Package httpfake is a small REST server for the generic http step: named objects
// in collections, a non-idempotent create (every POST makes a new object, like most
// real APIs), lookups by name, an OAuth2 token endpoint, and fault switches. It counts
// every create so tests can prove "exactly once".
package httpfake

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"provision/providers/fault"
)

// Options configure the server.
type Options struct {
	// ClientID/ClientSecret, when set, require a bearer token from POST /oauth/token
	// (grant client_credentials) on every /v1 call.
	ClientID, ClientSecret string
	TokenLifetime          time.Duration // default 1h
	Faults                 fault.Config
}

// Object is one stored object.
type Object struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Collection string         `json:"-"`
	Fields     map[string]any `json:"fields"`
}

// Server is the fake. It is an http.Handler, safe for concurrent use.
type Server struct {
	Faults *fault.Injector
	opts   Options
	h      http.Handler

	mu      sync.Mutex
	objects map[string]*Object // by collection/id
	creates map[string]int     // collection/name -> POSTs that created an object
	tokens  map[string]time.Time
	issued  int
}

// New returns a server.
func New(o Options) *Server {
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	s := &Server{Faults: fault.New(o.Faults), opts: o, objects: map[string]*Object{}, creates: map[string]int{}, tokens: map[string]time.Time{}}
	mux := http.NewServeMux()
	// No vendor API: the generic http section's own test server. Token: RFC 6749
	// section 4.4 (client credentials); the collection routes are plain REST
	// (POST creates, GET lists with ?name=, GET/PUT/DELETE one object).
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /v1/{coll}", s.auth(s.create))
	mux.HandleFunc("GET /v1/{coll}", s.auth(s.list))
	mux.HandleFunc("GET /v1/{coll}/{id}", s.auth(s.get))
	mux.HandleFunc("PUT /v1/{coll}/{id}", s.auth(s.put))
	mux.HandleFunc("DELETE /v1/{coll}/{id}", s.auth(s.del))
	s.h = s.Faults.Wrap(mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

func fail(w http.ResponseWriter, status int, msg string) {
	fault.WriteJSON(w, status, map[string]string{"message": msg})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "bad form")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != s.opts.ClientID || r.PostForm.Get("client_secret") != s.opts.ClientSecret {
		fault.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "unknown client or wrong secret"})
		return
	}
	tok := "tok-" + fault.RandomHex(8)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.opts.TokenLifetime)
	s.issued++
	s.mu.Unlock()
	fault.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(s.opts.TokenLifetime / time.Second)})
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.ClientID != "" {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			s.mu.Lock()
			exp, known := s.tokens[tok]
			s.mu.Unlock()
			if !ok || !known || time.Now().After(exp) {
				fail(w, http.StatusUnauthorized, "token missing, unknown or expired")
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		fail(w, http.StatusBadRequest, "body must be a JSON object")
		return
	}
	name, _ := body["name"].(string)
	if name == "" {
		fail(w, http.StatusUnprocessableEntity, "name is required")
		return
	}
	coll := r.PathValue("coll")
	o := &Object{ID: fault.RandomHex(8), Name: name, Collection: coll, Fields: body}
	s.mu.Lock()
	s.objects[coll+"/"+o.ID] = o
	s.creates[coll+"/"+name]++
	s.mu.Unlock()
	fault.WriteJSON(w, http.StatusCreated, o)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	coll, name := r.PathValue("coll"), r.URL.Query().Get("name")
	s.mu.Lock()
	items := []*Object{}
	for _, o := range s.objects {
		if o.Collection == coll && (name == "" || o.Name == name) {
			items = append(items, o)
		}
	}
	s.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	fault.WriteJSON(w, http.StatusOK, map[string]any{"items": items, "total": len(items)})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	o, ok := s.objects[r.PathValue("coll")+"/"+r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, "no such object")
		return
	}
	fault.WriteJSON(w, http.StatusOK, o)
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		fail(w, http.StatusBadRequest, "body must be a JSON object")
		return
	}
	coll, id := r.PathValue("coll"), r.PathValue("id")
	name, _ := body["name"].(string)
	s.mu.Lock()
	o, ok := s.objects[coll+"/"+id]
	if !ok {
		o = &Object{ID: id, Collection: coll}
		s.objects[coll+"/"+id] = o
	}
	o.Name, o.Fields = name, body
	s.mu.Unlock()
	fault.WriteJSON(w, http.StatusOK, o)
}

func (s *Server) del(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delete(s.objects, r.PathValue("coll")+"/"+r.PathValue("id"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Creates returns, per "collection/name", how many objects POST created.
func (s *Server) Creates() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.creates))
	for k, v := range s.creates {
		out[k] = v
	}
	return out
}

// Objects returns copies of all objects.
func (s *Server) Objects() []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Object, 0, len(s.objects))
	for _, o := range s.objects {
		out = append(out, *o)
	}
	return out
}

// TokensIssued counts tokens handed out.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Remove deletes the object of a collection by name, as someone working by hand in
// the vendor's portal would; it reports whether there was one.
func (s *Server) Remove(coll, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, o := range s.objects {
		if o.Collection == coll && o.Name == name {
			delete(s.objects, k)
			return true
		}
	}
	return false
}
