package io.doppel.config;

import java.util.Locale;

/**
 * {@code [node] nbd-tls}: whether NBD clients may or must switch to TLS with {@code NBD_OPT_STARTTLS}
 * before choosing an export (nbdkit's {@code --tls=off|on|require}).
 */
public enum NbdTlsMode
{
    /** STARTTLS is refused; plaintext only. */
    OFF,
    /** STARTTLS is offered; a client may also go on in plaintext. */
    ON,
    /** Every option but STARTTLS and ABORT is refused until the client has switched to TLS. */
    REQUIRE;

    public String configName()
    {
        return name().toLowerCase(Locale.ROOT);
    }
}
