"""Returns (devoluções) of a committed sale, in part and at any time, of either kind of hold: an
empenho's back to its pool or as the customer's DEVOLUCAO credit, a credit hold's back to its credits."""
