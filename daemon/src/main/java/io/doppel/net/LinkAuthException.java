package io.doppel.net;

import java.security.cert.CertificateException;

/**
 * A peer failed authentication: why, in words for the log, and a short {@link #reason()} for the
 * {@code doppel_link_auth_failures_total} counter. A {@link CertificateException} so the TLS trust manager can
 * throw it through the JDK's handshake and it can be found again in the failure's cause chain.
 */
public final class LinkAuthException extends CertificateException
{
    private static final long serialVersionUID = 1L;

    private final String reason;

    public LinkAuthException(final String reason, final String message)
    {
        super(message);
        this.reason = reason;
    }

    public String reason()
    {
        return reason;
    }

    /** The first LinkAuthException in {@code t}'s cause chain, or null. */
    public static LinkAuthException in(final Throwable t)
    {
        for (Throwable c = t; c != null; c = c.getCause())
        {
            if (c instanceof LinkAuthException)
            {
                return (LinkAuthException)c;
            }
            if (c.getCause() == c)
            {
                break;
            }
        }
        return null;
    }
}
