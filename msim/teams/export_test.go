package teams

// CallerConnOpen reports whether the edge still holds the caller's
// connection of a federated call (tests only).
func (c *Call) CallerConnOpen() bool {
	conn, err := c.dc.ua.TransportLayer().GetConnection("tls", c.conn)
	return err == nil && conn != nil
}
