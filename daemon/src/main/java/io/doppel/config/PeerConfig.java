package io.doppel.config;

import java.net.InetSocketAddress;

/**
 * A {@code [[peer]]} entry: another node, the address where it accepts peer links, and how links to and
 * from it are secured: a pre-shared key ({@code psk}, null when none), a pinned SHA-256 fingerprint of its
 * certificate ({@code tlsFingerprint}, 64 lowercase hex digits, null when none), and {@code insecure}, the
 * operator's explicit consent to a plaintext link off loopback.
 */
public record PeerConfig(String name, InetSocketAddress address, PresharedKey psk, String tlsFingerprint,
    boolean insecure)
{
    public PeerConfig(final String name, final InetSocketAddress address)
    {
        this(name, address, null, null, false);
    }
}
