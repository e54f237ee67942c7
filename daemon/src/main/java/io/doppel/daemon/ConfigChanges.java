package io.doppel.daemon;

import io.doppel.config.DoppelConfig;
import io.doppel.config.NodeConfig;
import io.doppel.config.PeerConfig;
import io.doppel.config.VolumeConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * What a live reload would do: the difference between the running node and a config file, split into
 * changes that apply live and changes that cannot (a listen address, a volume's layout, a role). A
 * reload is all or nothing, so an operator never ends up running a mix of two files: when anything is
 * refused, nothing is applied.
 */
final class ConfigChanges
{
    /** One line per change that applies live, e.g. {@code vm1: compression lz4 -> zstd}. */
    final List<String> applied = new ArrayList<>();
    /** One line per change that cannot apply live, saying what to do instead. */
    final List<String> refused = new ArrayList<>();
    /** Volumes that are new in the file. */
    final List<VolumeConfig> added = new ArrayList<>();
    /** Running volumes whose live settings change, with the settings from the file. */
    final List<VolumeConfig> changed = new ArrayList<>();
    /** The new log level, or null when it stays. */
    String logLevel;

    private ConfigChanges()
    {
    }

    /**
     * Compares the file's {@code next} config with what runs: the node's {@code running} config, and each
     * volume's config as it is now ({@code live}: roles there follow promote and demote, not the file).
     */
    static ConfigChanges between(final DoppelConfig running, final Map<String, VolumeConfig> live,
        final DoppelConfig next)
    {
        final ConfigChanges c = new ConfigChanges();
        c.compareNode(running.node(), next.node());
        c.comparePeers(running.peers(), next.peers());
        if (!running.limits().equals(next.limits()))
        {
            // Read on each accept and at each connection's start: nothing to do but adopt the new config.
            c.applied.add("[limits] " + running.limits() + " -> " + next.limits() + " (for new connections)");
        }
        final Set<String> nextNames = next.volumes().stream().map(VolumeConfig::name).collect(Collectors.toSet());
        for (final String name : live.keySet())
        {
            if (!nextNames.contains(name))
            {
                c.refused.add(name + ": not in the file any more; removing a volume needs a restart (the daemon keeps"
                    + " replicating it until then)");
            }
        }
        for (final VolumeConfig v : next.volumes())
        {
            final VolumeConfig now = live.get(v.name());
            if (now == null)
            {
                c.added.add(v);
                c.applied.add(v.name() + ": added as " + v.role().configName() + " (" + v.path() + ", peer " + v.peer()
                    + ")");
            }
            else
            {
                c.compareVolume(now, v);
            }
        }
        return c;
    }

    boolean accepted()
    {
        return refused.isEmpty();
    }

    private void compareNode(final NodeConfig now, final NodeConfig next)
    {
        restartOnly("[node].name", now.name(), next.name());
        restartOnly("[node].listen", address(now.listen()), address(next.listen()));
        restartOnly("[node].admin", address(now.admin()), address(next.admin()));
        restartOnly("[node].data-dir", now.dataDir(), next.dataDir());
        restartOnly("[node].admin-token-file", now.adminTokenFile(), next.adminTokenFile());
        restartOnly("[node].heartbeat-interval", now.heartbeatIntervalMillis() + "ms",
            next.heartbeatIntervalMillis() + "ms");
        restartOnly("[node].heartbeat-timeout", now.heartbeatTimeoutMillis() + "ms", next.heartbeatTimeoutMillis() + "ms");
        // TLS material is loaded when the listeners and the peer links' contexts start (a renewed certificate
        // at the same path, too): each side keeps trusting what it trusted when its links were made
        restartOnly("[node].tls-cert", now.tls().cert(), next.tls().cert());
        restartOnly("[node].tls-key", now.tls().key(), next.tls().key());
        restartOnly("[node].tls-ca", now.tls().ca(), next.tls().ca());
        restartOnly("[node].nbd-tls", now.nbdTls(), next.nbdTls());
        if (!now.logLevel().equals(next.logLevel()))
        {
            logLevel = next.logLevel();
            applied.add("[node].log-level " + now.logLevel() + " -> " + next.logLevel());
        }
    }

    private void comparePeers(final List<PeerConfig> now, final List<PeerConfig> next)
    {
        for (final PeerConfig p : next)
        {
            final PeerConfig old = now.stream().filter(o -> o.name().equals(p.name())).findFirst().orElse(null);
            if (old == null)
            {
                applied.add("peer " + p.name() + " added (" + address(p.address()) + ")");
            }
            else
            {
                if (!address(old.address()).equals(address(p.address())))
                {
                    refused.add("[[peer]] " + p.name() + ": address " + address(old.address()) + " -> "
                        + address(p.address()) + " cannot change live (links to it are in use); restart the daemon");
                }
                // Link security is settled when a link is made; changing it under running links would leave
                // some links on the old terms. The key itself is never printed.
                if (io.doppel.config.PresharedKey.differ(old.psk(), p.psk()))
                {
                    refused.add("[[peer]] " + p.name() + ": psk-file " + pskText(old) + " -> " + pskText(p)
                        + " cannot change live (the key or its file changed); restart the daemon to apply it");
                }
                if (!Objects.equals(old.tlsFingerprint(), p.tlsFingerprint()))
                {
                    refused.add("[[peer]] " + p.name() + ": tls-fingerprint " + old.tlsFingerprint() + " -> "
                        + p.tlsFingerprint() + " cannot change live; restart the daemon to apply it");
                }
                if (old.insecure() != p.insecure())
                {
                    refused.add("[[peer]] " + p.name() + ": insecure " + old.insecure() + " -> " + p.insecure()
                        + " cannot change live; restart the daemon to apply it");
                }
            }
        }
        for (final PeerConfig p : now)
        {
            if (next.stream().noneMatch(n -> n.name().equals(p.name())))
            {
                applied.add("peer " + p.name() + " removed (no volume replicates to it)");
            }
        }
    }

    private void compareVolume(final VolumeConfig now, final VolumeConfig next)
    {
        final String v = next.name();
        volumeFixed(v, "path", now.path(), next.path());
        volumeFixed(v, "size", now.size() > 0 ? exact(now.size()) : "(from the image)",
            next.size() > 0 ? exact(next.size()) : "(from the image)");
        volumeFixed(v, "block-size", exact(now.blockSize()), exact(next.blockSize()));
        volumeFixed(v, "source", now.source().configName(), next.source().configName());
        volumeFixed(v, "peer", now.peer(), next.peer());
        volumeFixed(v, "replication-log-size", exact(now.logBytes()), exact(next.logBytes()));
        volumeFixed(v, "nbd", now.nbd() == null ? "(none)" : now.nbd(), next.nbd() == null ? "(none)" : next.nbd());
        if (now.role() != next.role())
        {
            refused.add(v + ": role=\"" + next.role().configName() + "\" in the file, but " + v + " is "
                + now.role().configName() + " here now; change a role live with doppel "
                + (next.role() == VolumeConfig.Role.PRIMARY ? "promote " : "demote ") + v
                + ", then put the role it has in the file");
        }
        boolean live = false;
        live |= liveChange(v, "compression", now.compression().configName(), next.compression().configName());
        live |= liveChange(v, "ack", now.ack().configName(), next.ack().configName());
        live |= liveChange(v, "after-split-brain", now.afterSplitBrain().configName(),
            next.afterSplitBrain().configName());
        if (live)
        {
            changed.add(next);
        }
    }

    private void restartOnly(final String key, final Object now, final Object next)
    {
        if (!Objects.equals(now, next))
        {
            refused.add(key + ": " + now + " -> " + next + " cannot change live; restart the daemon to apply it");
        }
    }

    private void volumeFixed(final String volume, final String key, final Object now, final Object next)
    {
        if (!Objects.equals(now, next))
        {
            refused.add(volume + ": " + key + " " + now + " -> " + next + " cannot change live; restart the daemon"
                + " to apply it");
        }
    }

    private boolean liveChange(final String volume, final String key, final String now, final String next)
    {
        if (now.equals(next))
        {
            return false;
        }
        applied.add(volume + ": " + key + " " + now + " -> " + next);
        return true;
    }

    /** A size as a config file would say it: 4KiB, 64MiB, 10GiB, or bytes. */
    private static String exact(final long bytes)
    {
        final String[] units = {"KiB", "MiB", "GiB", "TiB"};
        String text = Long.toString(bytes);
        long v = bytes;
        for (int i = 0; i < units.length && v > 0 && v % 1024 == 0; i++)
        {
            v /= 1024;
            text = v + units[i];
        }
        return text;
    }

    private static String pskText(final PeerConfig p)
    {
        return p.psk() == null ? "(none)" : p.psk().file().toString();
    }

    private static String address(final java.net.InetSocketAddress a)
    {
        return a.getHostString() + ":" + a.getPort();
    }
}
