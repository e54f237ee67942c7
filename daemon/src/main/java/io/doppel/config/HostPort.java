package io.doppel.config;

import java.net.InetSocketAddress;

/** Parses "HOST:PORT" (IPv6 hosts in brackets) into an unresolved address, naming what is wrong. */
public final class HostPort
{
    private HostPort()
    {
    }

    /** Throws {@link IllegalArgumentException} with what is accepted when {@code text} is not HOST:PORT. */
    public static InetSocketAddress parse(final String text)
    {
        final int colon = text.lastIndexOf(':');
        if (colon <= 0 || colon == text.length() - 1)
        {
            throw new IllegalArgumentException("expected HOST:PORT, e.g. \"127.0.0.1:7788\"");
        }
        String host = text.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]"))
        {
            host = host.substring(1, host.length() - 1);
        }
        final int port;
        try
        {
            port = Integer.parseInt(text.substring(colon + 1));
        }
        catch (final NumberFormatException e)
        {
            throw new IllegalArgumentException("port is not a number; expected HOST:PORT with a port 1-65535");
        }
        if (port < 1 || port > 65535)
        {
            throw new IllegalArgumentException("port " + port + " out of range; expected 1-65535");
        }
        return InetSocketAddress.createUnresolved(host, port);
    }

    /**
     * Whether traffic to {@code address} stays on this host: a loopback IP literal (127.0.0.0/8, ::1) or
     * {@code localhost}. Host names are not resolved here (a config check must not depend on DNS), so any
     * other name counts as off loopback; so does the wildcard 0.0.0.0.
     */
    public static boolean isLoopback(final InetSocketAddress address)
    {
        final String host = address.getHostString();
        if ("localhost".equalsIgnoreCase(host))
        {
            return true;
        }
        if (!host.matches("[0-9.]+") && !host.contains(":"))
        {
            return false; // a name: not resolved
        }
        try
        {
            return java.net.InetAddress.getByName(host).isLoopbackAddress();
        }
        catch (final java.net.UnknownHostException e)
        {
            return false;
        }
    }
}
