package hub

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
)

// sessionBufSize is the read and write buffer of a box's WebSocket. The
// HTTP server's are 4 KB each, which for an idle box that sends a ping now
// and then is most of what it costs the hub (docs/hub.md); messages larger
// than the buffer still go through, in more reads and writes.
const sessionBufSize = 1024

// smallBufWriter hands the WebSocket library a hijacked connection with
// small buffers instead of the HTTP server's.
type smallBufWriter struct {
	http.ResponseWriter
}

func (w smallBufWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hub: %T cannot be hijacked", w.ResponseWriter)
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The 101 response may still sit in the server's writer.
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	// Bytes the box sent right after the upgrade may already sit in the
	// server's reader (its first message races the 101 response). They
	// must sit in the new reader's buffer too, not only in the stream
	// behind it: the WebSocket library keeps what is buffered and reads
	// the rest from conn itself.
	n := brw.Reader.Buffered()
	br := bufio.NewReaderSize(conn, max(sessionBufSize, n))
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(sessionBufSize, n))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, sessionBufSize)), nil
}
