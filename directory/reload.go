package directory

// Close closes the service connections kept for reuse, for a directory
// that a reloaded configuration replaced. A connection still in use by a
// login that began before is closed when it is done only if the pool is
// full; at most PoolSize of them stay open until they are dropped.
func (d *Directory) Close() {
	for {
		select {
		case c := <-d.pool:
			c.Close()
		default:
			return
		}
	}
}
