package io.doppel.config;

/** A config file that cannot be used; the message names the key, the value and what is accepted. */
public final class ConfigException extends Exception
{
    private static final long serialVersionUID = 1L;

    public ConfigException(final String message)
    {
        super(message);
    }
}
