package graphtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

type batchRequest struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	DependsOn []string          `json:"dependsOn,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// serveBatch runs the requests of a JSON $batch as Graph documents it for
// Outlook: up to four at a time, in order, each authenticated, authorized,
// counted and throttled on its own as if it came alone (so a batch of 20 for
// one mailbox stays within its concurrency limit, unless other requests for
// the mailbox are in flight: then items get 429). With dependsOn anywhere the
// batch runs one request at a time, and a request whose dependsOn names a
// failed one gets 424. The responses come in a shuffled order (Graph promises
// no order). A non-JSON body is base64 in both directions, a JSON body inline.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.principal(w, r); !ok {
		return
	}
	s.mu.Lock()
	s.batches++
	s.mu.Unlock()
	body, ok := jsonBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Requests []batchRequest `json:"requests"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid batch payload format.")
		return
	}
	if len(req.Requests) == 0 || len(req.Requests) > MaxBatchRequests {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid batch payload format: a batch holds 1 to "+strconv.Itoa(MaxBatchRequests)+" requests.")
		return
	}
	seen := map[string]bool{}
	for _, item := range req.Requests {
		if item.ID == "" || seen[item.ID] || item.Method == "" || item.URL == "" {
			writeError(w, http.StatusBadRequest, "BadRequest", "Invalid batch payload format: every request needs a unique id, a method and a url.")
			return
		}
		seen[item.ID] = true
	}
	wave := batchParallel
	for _, item := range req.Requests {
		if len(item.DependsOn) > 0 {
			wave = 1
		}
	}
	failed := map[string]bool{}
	responses := make([]batchResponse, 0, len(req.Requests))
	for start := 0; start < len(req.Requests); start += wave {
		items := req.Requests[start:min(start+wave, len(req.Requests))]
		out := make([]batchResponse, len(items))
		recs := make([]*recorder, len(items))
		runs := make([]*admitted, len(items))
		for i, item := range items { // admitted all together: they run at once
			recs[i] = &recorder{header: http.Header{}}
			if resp, done := s.prepareBatchItem(r, item, failed, recs[i], &runs[i]); done {
				out[i] = resp
			}
		}
		var wg sync.WaitGroup
		for i, a := range runs {
			if a != nil {
				wg.Go(func() { s.serveAdmitted(recs[i], a) })
			}
		}
		wg.Wait()
		for i, a := range runs {
			if a != nil {
				s.release(a.c.mb, a.c.p.AppID)
				out[i] = recs[i].response(items[i].ID)
			}
			if out[i].Status >= 400 {
				failed[items[i].ID] = true
			}
		}
		responses = append(responses, out...)
	}
	rand.Shuffle(len(responses), func(i, j int) { responses[i], responses[j] = responses[j], responses[i] })
	writeJSON(w, http.StatusOK, map[string]any{"responses": responses})
}

// batchParallel is how many requests of a batch Graph sends Outlook at a time.
const batchParallel = 4

// prepareBatchItem builds the request of a batch item and admits it into *run,
// or returns its response (done) when it fails before that.
func (s *Server) prepareBatchItem(outer *http.Request, item batchRequest, failed map[string]bool, rec *recorder, run **admitted) (resp batchResponse, done bool) {
	for _, dep := range item.DependsOn {
		if failed[dep] {
			return batchResponse{ID: item.ID, Status: http.StatusFailedDependency, Headers: map[string]string{"Content-Type": "application/json"},
				Body: errorBody("BadRequest", "The request depends on request "+dep+", which failed.")}, true
		}
	}
	path := "/" + strings.TrimPrefix(item.URL, "/")
	if strings.HasPrefix(path, "/v1.0/") || strings.HasPrefix(strings.ToLower(path), "/$batch") {
		return batchResponse{ID: item.ID, Status: http.StatusBadRequest, Headers: map[string]string{"Content-Type": "application/json"},
			Body: errorBody("BadRequest", "The url of a batch request is relative to the version: /users/…, /me/….")}, true
	}
	var body []byte
	contentType := ""
	for k, v := range item.Headers {
		if strings.EqualFold(k, "Content-Type") {
			contentType = v
		}
	}
	if len(item.Body) > 0 {
		body = item.Body
		var text string
		if !strings.Contains(strings.ToLower(contentType), "json") && json.Unmarshal(item.Body, &text) == nil {
			// A non-JSON body is base64 in a batch. For a base64 MIME body that
			// reads as base64 of the base64 text; Microsoft's documents do not say
			// whether clients encode it twice, so both readings are accepted.
			body = []byte(text)
			if raw, err := base64.StdEncoding.DecodeString(text); err == nil {
				_, again := base64.StdEncoding.DecodeString(stripSpace(string(raw)))
				if !strings.HasPrefix(strings.ToLower(contentType), "text/plain") || again == nil {
					body = raw
				}
			}
		}
	}
	r, err := http.NewRequestWithContext(outer.Context(), item.Method, "/v1.0"+path, bytes.NewReader(body))
	if err != nil {
		return batchResponse{ID: item.ID, Status: http.StatusBadRequest, Headers: map[string]string{"Content-Type": "application/json"},
			Body: errorBody("BadRequest", "Invalid request url or method.")}, true
	}
	for k, v := range item.Headers {
		r.Header.Set(k, v)
	}
	r.Header.Set("Authorization", outer.Header.Get("Authorization"))
	if *run = s.admitRequest(rec, r); *run == nil {
		return rec.response(item.ID), true
	}
	return batchResponse{}, false
}

// response is what the recorder holds as a batch response.
func (rec *recorder) response(id string) batchResponse {
	resp := batchResponse{ID: id, Status: rec.status(), Headers: map[string]string{}}
	for k := range rec.header {
		if k != "Content-Length" {
			resp.Headers[k] = rec.header.Get(k)
		}
	}
	if rec.body.Len() > 0 {
		if strings.Contains(rec.header.Get("Content-Type"), "json") {
			resp.Body = json.RawMessage(rec.body.Bytes())
		} else {
			resp.Body = base64.StdEncoding.EncodeToString(rec.body.Bytes())
		}
	}
	return resp
}

func errorBody(code, message string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": message}}
}

// recorder is the ResponseWriter of a batch item.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
