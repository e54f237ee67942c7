package io.doppel.config;

import java.util.List;
import java.util.Optional;

/** One node's whole configuration, as loaded and validated from its TOML file. */
public record DoppelConfig(NodeConfig node, List<PeerConfig> peers, List<VolumeConfig> volumes, Limits limits)
{
    public DoppelConfig(final NodeConfig node, final List<PeerConfig> peers, final List<VolumeConfig> volumes)
    {
        this(node, peers, volumes, Limits.defaults());
    }

    public Optional<PeerConfig> peer(final String name)
    {
        return peers.stream().filter(p -> p.name().equals(name)).findFirst();
    }
}
