package stream

// The failed attempt's wire format.
//
// It was JSON, with the job in its JSON form: the body in base64, a third
// larger than itself. A body of more than about 760 KiB, which rendered
// and was sent, then made a failure too large for a 1 MiB message: the
// delivery, already recorded RETRYING, was never handed to the retry
// service. EncodeFailure writes a binary form about the job's own size:
//
//	failureFormat (one byte, never '{')
//	status code   uvarint
//	end           varint, unix nanoseconds (0: none)
//	error         uvarint length, then its bytes
//	the job       delivery.Job's binary format, to the end
//
// DecodeFailure reads it and the JSON form earlier versions wrote.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// failureFormat opens a binary failure.
const failureFormat = 0x01

// EncodeFailure writes f in the binary form.
func EncodeFailure(f *Failure) ([]byte, error) {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(f.Error)+f.Job.Size())
	b = append(b, failureFormat)
	b = binary.AppendUvarint(b, uint64(max(f.StatusCode, 0)))
	var end int64
	if !f.End.IsZero() {
		end = f.End.UnixNano()
	}
	b = binary.AppendVarint(b, end)
	b = binary.AppendUvarint(b, uint64(len(f.Error)))
	b = append(b, f.Error...)
	b, err := f.Job.AppendBinary(b)
	if err != nil {
		return nil, fmt.Errorf("encode failure of %s: %w", f.Job.DeliveryID, err)
	}
	return b, nil
}

var errBadFailure = errors.New("malformed failure")

// DecodeFailure reads a failure in either form into f.
func DecodeFailure(b []byte, f *Failure) error {
	if len(b) > 0 && b[0] == '{' {
		*f = Failure{}
		return json.Unmarshal(b, f)
	}
	if len(b) == 0 || b[0] != failureFormat {
		return errBadFailure
	}
	b = b[1:]
	status, n := binary.Uvarint(b)
	if n <= 0 || status > 999 {
		return errBadFailure
	}
	b = b[n:]
	end, n := binary.Varint(b)
	if n <= 0 {
		return errBadFailure
	}
	b = b[n:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > uint64(len(b)-n) {
		return errBadFailure
	}
	b = b[n:]
	*f = Failure{StatusCode: int(status), Error: string(b[:size])}
	if end != 0 {
		f.End = time.Unix(0, end).UTC()
	}
	if err := f.Job.UnmarshalBinary(b[size:]); err != nil {
		return fmt.Errorf("%w: %v", errBadFailure, err)
	}
	return nil
}
