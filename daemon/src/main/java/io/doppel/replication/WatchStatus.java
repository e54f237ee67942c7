package io.doppel.replication;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What a watched volume's scanner is doing, for {@code /status} ("watch") and the tests: how far the
 * current scan is, what the last one found, and how much the cheap checks saved. Written by the watcher
 * thread only; read by the admin endpoint.
 */
public final class WatchStatus
{
    /** Scans started, and cycles that read nothing because no event came and size and mtime were unchanged. */
    public final AtomicLong scans = new AtomicLong();
    public final AtomicLong skippedCycles = new AtomicLong();
    /** File events seen (inotify). */
    public final AtomicLong events = new AtomicLong();
    /** Bytes read and hashed by all scans (holes are skipped, not read). */
    public final AtomicLong bytesRead = new AtomicLong();
    /** Blocks found changed by all scans, and blocks still changing while they were read. */
    public final AtomicLong changedBlocks = new AtomicLong();
    public final AtomicLong unstableBlocks = new AtomicLong();
    /** The current (or last) scan: bytes of the volume covered so far, holes included, of its total. */
    public volatile long scannedBytes;
    public volatile long totalBytes;
    public volatile boolean scanning;
    public volatile long lastScanChangedBlocks;
    public volatile long lastScanMillis;
    /** When the last scan ended (epoch ms; 0: none yet). */
    public volatile long lastScanEnd;
    /** When the last scan that found the file equal to what was shipped, with nothing changing, ended. */
    public volatile long lastQuietScanEnd;
    public volatile boolean inotify;
    public volatile String error = "";
    /**
     * True when the whole last scan found the file equal to what was shipped and no event came while it
     * ran: only then may the standby be called up to date. Cleared by every event.
     */
    public volatile boolean quiet;

    public Map<String, Object> toMap()
    {
        final Map<String, Object> m = new LinkedHashMap<>();
        m.put("state", scanning ? "scanning" : "idle");
        m.put("scannedBytes", scannedBytes);
        m.put("totalBytes", totalBytes);
        m.put("scans", scans.get());
        m.put("skippedCycles", skippedCycles.get());
        m.put("events", events.get());
        m.put("bytesRead", bytesRead.get());
        m.put("changedBlocks", changedBlocks.get());
        m.put("lastScanChangedBlocks", lastScanChangedBlocks);
        m.put("unstableBlocks", unstableBlocks.get());
        m.put("lastScanSeconds", lastScanMillis / 1000.0);
        m.put("lastScanEnd", lastScanEnd == 0 ? "" : java.time.Instant.ofEpochMilli(lastScanEnd).toString());
        m.put("lastQuietScanEnd", lastQuietScanEnd == 0 ? "" : java.time.Instant.ofEpochMilli(lastQuietScanEnd)
            .toString());
        m.put("quiet", quiet);
        m.put("inotify", inotify);
        m.put("error", error);
        return m;
    }
}
