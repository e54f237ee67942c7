package io.doppel.replication;

/** The peer link closed or timed out; the sender reconnects with backoff. */
final class LinkDownException extends Exception
{
    private static final long serialVersionUID = 1L;

    LinkDownException(final String message)
    {
        super(message);
    }
}
