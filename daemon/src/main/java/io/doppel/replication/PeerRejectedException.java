package io.doppel.replication;

/** The handshake was refused (by the peer, or by us after reading its hello); retried slowly, since config must change. */
final class PeerRejectedException extends Exception
{
    private static final long serialVersionUID = 1L;

    PeerRejectedException(final String message)
    {
        super(message);
    }
}
