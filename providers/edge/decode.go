package edge

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"provision/providers/rest"
)

// The platform's answer shapes are not documented (API-NOTES 5). These decoders are
// liberal: a plain JSON body or a {code, msg, data} envelope; lists as a bare array
// or an object holding the array under list/items/data/rows/records/result with an
// optional total; tokens as {token}, {access_token}, {accessToken} or a bare JSON
// string. None of them panics on any input (see the fuzz targets).

// envelope is the {code, msg, data} wrapper.
type envelope struct {
	// Enveloped is true when the body had the wrapper.
	Enveloped bool
	// Code is the envelope's code (0 when absent or not a number).
	Code int
	// Msg is the envelope's message (msg or message).
	Msg string
	// Data is the payload: the envelope's data, or the whole body.
	Data []byte
}

// failed reports whether an enveloped answer carries an error status in its code
// (some builds answer HTTP 200 with the real status in the body; inference).
func (e envelope) failed() bool { return e.Enveloped && e.Code >= 400 && e.Code <= 599 }

// unwrap reads an answer body. A JSON object is an envelope when it has a "code"
// and at least one of "msg", "message" or "data".
func unwrap(body []byte) envelope {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return envelope{Data: b}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return envelope{Data: b}
	}
	rawCode, hasCode := m["code"]
	_, hasMsg := m["msg"]
	_, hasMessage := m["message"]
	data, hasData := m["data"]
	if !hasCode || !(hasMsg || hasMessage || hasData) {
		return envelope{Data: b}
	}
	e := envelope{Enveloped: true, Code: flexInt(rawCode), Data: bytes.TrimSpace(data)}
	e.Msg = flexString(m["msg"])
	if e.Msg == "" {
		e.Msg = flexString(m["message"])
	}
	return e
}

// flexInt reads a JSON number or a string holding one; 0 otherwise.
func flexInt(raw json.RawMessage) int {
	var f rest.FlexInt
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil {
		return 0
	}
	if f > 1<<31-1 || f < -(1<<31) {
		return 0
	}
	return int(f)
}

// flexString reads a JSON string, or the text of a number; "" otherwise.
func flexString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// isNull reports whether a payload is empty or JSON null.
func isNull(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

// listPage is one page of a list answer.
type listPage struct {
	Items []json.RawMessage
	// Total is the server's total count, -1 when it gave none.
	Total int
}

// listKeys are the object keys a list may hide under.
var listKeys = []string{"list", "items", "data", "rows", "records", "result", "results"}

// decodeList reads a list payload (already unwrapped). An empty or null payload is an
// empty list.
func decodeList(payload []byte) (listPage, error) {
	p := listPage{Total: -1}
	b := bytes.TrimSpace(payload)
	if isNull(b) {
		return p, nil
	}
	if b[0] == '[' {
		err := json.Unmarshal(b, &p.Items)
		return p, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return p, err
	}
	for _, k := range []string{"total", "count", "totalCount"} {
		if raw, ok := m[k]; ok {
			p.Total = flexInt(raw)
			break
		}
	}
	for _, k := range listKeys {
		raw, ok := m[k]
		if !ok || isNull(raw) {
			continue
		}
		raw = bytes.TrimSpace(raw)
		if raw[0] == '[' {
			err := json.Unmarshal(raw, &p.Items)
			return p, err
		}
		if raw[0] == '{' {
			// A nested page ({data: {total, list}}).
			inner, err := decodeList(raw)
			if err == nil && (inner.Items != nil || inner.Total >= 0) {
				if inner.Total < 0 {
					inner.Total = p.Total
				}
				return inner, nil
			}
		}
	}
	if p.Total >= 0 {
		// {total: 0} with no list: an empty page.
		return p, nil
	}
	return p, errNotAList
}

type decodeError string

func (e decodeError) Error() string { return string(e) }

const errNotAList = decodeError("answer is not a list (want an array or an object with list/items/data and total)")

// tokenAnswer is a decoded login or refresh answer.
type tokenAnswer struct {
	Token string
	// Expiry is when the token stops working, zero when the answer did not say.
	Expiry time.Time
}

// decodeToken reads a token answer payload (already unwrapped).
func decodeToken(payload []byte, now time.Time) (tokenAnswer, error) {
	b := bytes.TrimSpace(payload)
	if isNull(b) {
		return tokenAnswer{}, decodeError("answer holds no token")
	}
	var s string
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return tokenAnswer{}, err
		}
		if s == "" {
			return tokenAnswer{}, decodeError("answer holds no token")
		}
		return tokenAnswer{Token: s}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return tokenAnswer{}, err
	}
	var t tokenAnswer
	for _, k := range []string{"token", "access_token", "accessToken", "jwt"} {
		if v := flexString(m[k]); v != "" {
			t.Token = v
			break
		}
	}
	if t.Token == "" {
		return tokenAnswer{}, decodeError("answer holds no token (want token, access_token or accessToken)")
	}
	for _, k := range []string{"expires_in", "expiresIn", "expire", "expires", "expiry", "exp", "expireTime"} {
		if raw, ok := m[k]; ok {
			var f rest.FlexInt
			if json.Unmarshal(raw, &f) != nil || f <= 0 {
				continue
			}
			t.Expiry = expiryFrom(int64(f), now)
			break
		}
	}
	return t, nil
}

// expiryFrom reads a number as a lifetime in seconds, or as an epoch time in
// seconds (> 1e9) or milliseconds (> 1e12).
func expiryFrom(v int64, now time.Time) time.Time {
	switch {
	case v > 1e15:
		return time.Time{}
	case v > 1e12:
		return time.UnixMilli(v)
	case v > 1e9:
		return time.Unix(v, 0)
	default:
		return now.Add(time.Duration(v) * time.Second)
	}
}

// statusMeaning names the documented status codes (API-NOTES 5).
func statusMeaning(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "validation error"
	case http.StatusUnauthorized:
		return "login needed"
	case http.StatusForbidden:
		return "not allowed"
	case http.StatusNotFound:
		return "not found"
	case http.StatusConflict:
		return "already exists"
	case http.StatusUnsupportedMediaType:
		return "wrong media type"
	case http.StatusTooManyRequests:
		return "too many requests"
	case http.StatusInternalServerError:
		return "internal error"
	}
	return ""
}

// decodeError reads an error answer: the envelope's msg (or message, error,
// errorText), the documented meaning of the status as the code, and a snippet of the
// body when it holds no message (an HTML page is named by its title).
func decodeErrorBody(status int, h http.Header, body []byte) (code, message string) {
	code = statusMeaning(status)
	e := unwrap(body)
	msg := e.Msg
	if msg == "" {
		_, msg = rest.DefaultErrorDecoder(status, h, body)
	}
	if e.Enveloped && e.Code != 0 && e.Code != status {
		// The body's own code differs from the HTTP status: keep both.
		if m := statusMeaning(e.Code); m != "" {
			code = strings.TrimSpace(code + " (" + strconv.Itoa(e.Code) + " " + m + ")")
		} else {
			code = strings.TrimSpace(code + " (code " + strconv.Itoa(e.Code) + ")")
		}
	}
	return code, clipText(msg)
}

func clipText(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "?")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// expiredAnswer: HTTP 401, or an HTTP 2xx whose envelope code is 401.
func expiredAnswer(status int, _ http.Header, body []byte) bool {
	if status == http.StatusUnauthorized {
		return true
	}
	if status >= 200 && status < 300 && bytes.Contains(body, []byte("401")) {
		return unwrap(body).Code == http.StatusUnauthorized
	}
	return false
}
