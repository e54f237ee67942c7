package io.doppel.replication;

/** The handshake was refused (by the peer, or by us after reading its hello); retried slowly, since config must change. */
final class PeerRejectedException extends Exception
{
    private static final long serialVersionUID = 1L;

    /** Whether authentication failed (REJECT code 2, or this side refused the peer's proof or certificate). */
    final boolean auth;

    PeerRejectedException(final String message)
    {
        this(message, false);
    }

    PeerRejectedException(final String message, final boolean auth)
    {
        super(message);
        this.auth = auth;
    }

    /** Counts an authentication refusal in the node's link-security meters (by whom: the peer, or this side). */
    void countIn(final io.doppel.net.LinkSecurity security)
    {
        if (auth)
        {
            security.failed(getMessage().startsWith("refused by peer") ? "refused-by-peer" : "psk");
        }
    }
}
