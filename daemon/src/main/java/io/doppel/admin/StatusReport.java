package io.doppel.admin;

import io.doppel.replication.VolumeState;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Builds the {@code /status} document; field names are a contract (see docs/operations.md). */
public final class StatusReport
{
    private StatusReport()
    {
    }

    public static Map<String, Object> of(final String node, final List<VolumeState> volumes)
    {
        return of(node, volumes, List.of());
    }

    /** As above, with the node's volume groups ({@code groups}: each group's own map). */
    public static Map<String, Object> of(final String node, final List<VolumeState> volumes,
        final List<Map<String, Object>> groups)
    {
        final Map<String, Object> root = new LinkedHashMap<>();
        root.put("node", node);
        final List<Object> list = new ArrayList<>();
        for (final VolumeState v : volumes)
        {
            final Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", v.config().name());
            m.put("group", v.config().group() == null ? "" : v.config().group());
            m.put("role", v.config().role().configName());
            m.put("size", v.size());
            m.put("blockSize", v.config().blockSize());
            m.put("compression", v.config().compression().configName());
            m.put("ack", v.config().ack().configName());
            m.put("nbd", v.config().nbd());
            final Map<String, Object> peer = new LinkedHashMap<>();
            peer.put("name", v.config().peer());
            peer.put("connected", v.connected());
            m.put("peer", peer);
            m.put("replication", v.replication().wireName());
            m.put("disk", v.disk().wireName());
            m.put("generation", v.generation());
            m.put("sync", v.syncKind());
            m.put("syncBytesSent", v.syncBytesSent());
            m.put("dirtyBytes", v.dirtyBytes());
            m.put("inFlightBytes", v.inFlightBytes());
            m.put("logBytes", v.logBytes());
            m.put("bytesSent", v.bytesSent());
            m.put("bytesReceived", v.bytesReceived());
            m.put("syncedBytes", v.syncedBytes());
            m.put("syncTotalBytes", v.syncTotalBytes());
            m.put("blocksSent", v.blocksSent());
            m.put("blocksReceived", v.blocksReceived());
            m.put("zeroBytesElided", v.zeroBytes());
            m.put("compressionSavedBytes", v.compressionSavedBytes());
            m.put("sentSeq", v.sentSeq());
            m.put("ackedSeq", v.ackedSeq());
            m.put("logOverflows", v.logOverflows());
            m.put("degradedAcks", v.degradedAcks());
            m.put("diskErrors", v.diskErrors());
            m.put("connects", v.connects());
            final Map<String, Object> verify = new LinkedHashMap<>();
            verify.put("state", v.verifyState());
            verify.put("runs", v.verifyRuns());
            verify.put("repair", v.verifyRepair());
            verify.put("verifiedBytes", v.verifiedBytes());
            verify.put("totalBytes", v.verifyTotalBytes());
            verify.put("differingBlocks", v.verifyDifferingBlocks());
            verify.put("repairedBlocks", v.verifyRepairedBlocks());
            verify.put("skippedBlocks", v.verifySkippedBlocks());
            verify.put("differingOffsets", v.verifyDifferingOffsets());
            m.put("verify", verify);
            m.put("source", v.config().source().configName());
            if (v.watch() != null)
            {
                m.put("watch", v.watch().toMap());
            }
            if (v.twoWay() != null)
            {
                m.put("mode", "two-way");
                m.put("twoWay", v.twoWay().toMap());
            }
            m.put("lastError", v.lastError());
            list.add(m);
        }
        root.put("volumes", list);
        root.put("groups", groups);
        return root;
    }
}
