package io.doppel.config;

import java.net.InetSocketAddress;

/** A {@code [[peer]]} entry: another node and the address where it accepts peer links. */
public record PeerConfig(String name, InetSocketAddress address)
{
}
