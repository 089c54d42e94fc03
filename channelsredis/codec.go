package channelsredis

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Serializers channels_redis speaks (its serializer_format setting, 4.2.1+;
// earlier releases always use msgpack).
const (
	SerializerMsgpack = "msgpack"
	SerializerJSON    = "json"
)

// channelKey is the key channels_redis puts the receiving channels of a
// group message under; the receiver removes it before the consumer sees
// the event.
const channelKey = "__asgi_channel__"

// Field is one key and value of an event that chatd sends, in order.
// Values are strings, integers, floats, booleans or nil: never bytes, which
// a Django consumer that JSON-encodes the whole event cannot handle.
type Field struct {
	Key   string
	Value any
}

// Event is a message received from the Django side, decoded: the keys and
// values of its map (msgpack or JSON), without __asgi_channel__.
type Event map[string]any

// Type returns the event's "type" ("" if missing or not a string).
func (e Event) Type() string { s, _ := e["type"].(string); return s }

// String returns the string value of key, if it is a string.
func (e Event) String(key string) (string, bool) { s, ok := e[key].(string); return s, ok }

// codec turns events into the bytes channels_redis stores or publishes and
// back: [random prefix] + serialize(event), the serialized event optionally
// a Fernet token.
type codec struct {
	json      bool
	prefixLen int         // random bytes before the body (core layer only)
	keys      []fernetKey // nil: no encryption; keys[0] encrypts
	ttl       time.Duration
	now       func() time.Time
}

var errUndecodable = errors.New("channelsredis: message cannot be decoded")

// encode serializes fields, plus channels as __asgi_channel__ when it is
// not nil (a string or a []string), with the random prefix when withPrefix.
func (c *codec) encode(fields []Field, channels any, withPrefix bool) ([]byte, error) {
	var buf bytes.Buffer
	prefix := 0
	if withPrefix {
		prefix = c.prefixLen
	}
	buf.Grow(prefix + 128)
	if prefix > 0 {
		b := make([]byte, prefix)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		buf.Write(b)
	}
	n := len(fields)
	if channels != nil {
		n++
	}
	if c.json {
		buf.WriteByte('{')
		for i, f := range fields {
			if i > 0 {
				buf.WriteString(", ")
			}
			if err := writeJSON(&buf, f.Key, f.Value); err != nil {
				return nil, err
			}
		}
		if channels != nil {
			if len(fields) > 0 {
				buf.WriteString(", ")
			}
			if err := writeJSON(&buf, channelKey, channels); err != nil {
				return nil, err
			}
		}
		buf.WriteByte('}')
	} else {
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		enc.UseCompactFloats(false)
		if err := enc.EncodeMapLen(n); err != nil {
			return nil, err
		}
		for _, f := range fields {
			if err := enc.EncodeString(f.Key); err != nil {
				return nil, err
			}
			if err := enc.Encode(f.Value); err != nil {
				return nil, err
			}
		}
		if channels != nil {
			if err := enc.EncodeString(channelKey); err != nil {
				return nil, err
			}
			if err := enc.Encode(channels); err != nil {
				return nil, err
			}
		}
	}
	if c.keys == nil {
		return buf.Bytes(), nil
	}
	out := buf.Bytes()
	tok, err := fernetEncrypt(c.keys[0], out[prefix:], c.now())
	if err != nil {
		return nil, err
	}
	return append(out[:prefix:prefix], tok...), nil
}

func writeJSON(buf *bytes.Buffer, key string, v any) error {
	k, err := json.Marshal(key)
	if err != nil {
		return err
	}
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("channelsredis: field %q: %w", key, err)
	}
	buf.Write(k)
	buf.WriteString(": ")
	buf.Write(val)
	return nil
}

// decode returns the event in member (stripping the random prefix when
// withPrefix) and its receiving channels (nil when it names none).
func (c *codec) decode(member []byte, withPrefix bool) (Event, []string, error) {
	body := member
	if withPrefix {
		if len(body) < c.prefixLen {
			return nil, nil, errUndecodable
		}
		body = body[c.prefixLen:]
	}
	if c.keys != nil {
		pt, err := fernetDecrypt(c.keys, body, c.ttl, c.now())
		if err != nil {
			return nil, nil, err
		}
		body = pt
	}
	var ev Event
	if c.json {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&ev); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errUndecodable, err)
		}
	} else if err := msgpack.Unmarshal(body, &ev); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUndecodable, err)
	}
	if ev == nil {
		return nil, nil, errUndecodable
	}
	var chans []string
	switch v := ev[channelKey].(type) {
	case string:
		chans = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				chans = append(chans, s)
			}
		}
	}
	delete(ev, channelKey)
	return ev, chans, nil
}
