package io.doppel.net;

/** A peer sent something that breaks wire protocol v1; the connection that carried it is closed. */
public class ProtocolException extends RuntimeException
{
    private static final long serialVersionUID = 1L;

    public ProtocolException(final String message)
    {
        super(message);
    }
}
