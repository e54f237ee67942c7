package io.doppel.watch;

import io.doppel.log.Log;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.WatchStatus;
import io.doppel.storage.NativeIo;
import io.doppel.storage.Volume;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Finds the blocks of a watched image file that another program changed, and marks them in the volume's
 * dirty map, from where the replication sender ships them as it ships any catch-up. Its own thread: it
 * reads the mapped file, which may fault pages in from disk.
 *
 * <p>The cheap checks come first. A cycle starts when a file event (inotify) came or every
 * {@code watch-interval}; with no event and the file's size, mtime, ctime and inode unchanged since a scan
 * that found it settled, the cycle reads nothing. Otherwise a scan walks the file's data extents
 * (holes, found with {@code SEEK_DATA}/{@code SEEK_HOLE}, are never read: they are zeros) and compares
 * each block's hash with the hash of what was last shipped ({@link WatchHashes}), paced to
 * {@code watch-rate} bytes per second. A block found changed is read again until two reads agree; one
 * that keeps changing is still marked, and the scan does not count as settled.
 *
 * <p>Settled ({@link WatchStatus#quiet}): a whole scan found every block equal to what was shipped, no
 * event came while it ran, and the file's size and times did not move. Only then is the standby a copy of
 * the file as it was at one moment, and only then does the sender let it be called up to date.
 */
public final class FileWatcher implements Runnable, AutoCloseable
{
    /** Blocks read between two pacing and event checks: 1 MiB at 4 KiB blocks. */
    static final int STRIPE_BLOCKS = 256;
    /** After changes were found, the next scan waits at most this long for the sender to ship them. */
    static final long SHIP_WAIT_MILLIS = 2_000;
    /** A scan starts once no event came for this long, or this long after the first event at the latest. */
    static final int BURST_QUIET_MILLIS = 100;
    static final long BURST_MAX_MILLIS = 1_000;

    private final PrimaryVolume primary;
    private final Volume volume;
    private final WatchHashes hashes;
    private final WatchStatus status;
    private final String component;
    private final Path path;
    private final int blockSize;
    private final long blockCount;
    private final Thread thread;
    private volatile boolean running = true;
    private Inotify inotify;
    private int fd = -1;
    /** The inode of the file when watching began: another one at the path is another file. */
    private Object inode;
    /** Marked-but-not-yet-handed-over run of changed blocks, [runStart, runEnd). */
    private long runStart = -1;
    private long runEnd = -1;

    public FileWatcher(final PrimaryVolume primary, final WatchHashes hashes, final WatchStatus status,
        final String component)
    {
        this.primary = primary;
        this.volume = primary.volume();
        this.hashes = hashes;
        this.status = status;
        this.component = component;
        this.path = volume.path();
        this.blockSize = primary.config().blockSize();
        this.blockCount = hashes.blockCount();
        this.thread = new Thread(this, "doppel-watch-" + primary.name());
        this.thread.setDaemon(true);
    }

    public void start()
    {
        thread.start();
    }

    /** The gate the sender asks before calling the standby up to date. */
    public boolean settled()
    {
        return status.quiet;
    }

    @Override
    public void run()
    {
        try
        {
            inotify = Inotify.open(path);
            status.inotify = true;
        }
        catch (final IOException | RuntimeException | UnsatisfiedLinkError e)
        {
            Log.warn(component, "no file events for " + path + " (" + e.getMessage() + "); checking size and mtime"
                + " every watch-interval instead");
        }
        try
        {
            fd = NativeIo.openReadOnly(path);
        }
        catch (final IOException e)
        {
            Log.warn(component, e.getMessage() + "; holes are read like data");
        }
        try
        {
            loop();
        }
        catch (final RuntimeException | InternalError e)
        {
            // InternalError: a read of the mapping faulted (the file was truncated under it).
            fail("watching stopped: " + e);
        }
        finally
        {
            if (inotify != null)
            {
                inotify.close();
            }
            NativeIo.closeDescriptor(fd);
        }
    }

    private void loop()
    {
        Map<String, Object> seen = null;
        boolean scanNow = true;
        while (running)
        {
            if (!scanNow)
            {
                if (waitForChange(primary.config().watchIntervalMillis()))
                {
                    noticed();
                    scanNow = true;
                }
            }
            if (!status.error.isEmpty())
            {
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(200));
                continue;
            }
            final Map<String, Object> now = stat();
            if (now == null || !running)
            {
                continue;
            }
            if (!scanNow && status.quiet && now.equals(seen))
            {
                status.skippedCycles.incrementAndGet();
                continue;
            }
            if (!checkSameFile(now))
            {
                continue;
            }
            if (!scanNow)
            {
                noticed(); // size or times moved without an event (a writer through a shared mapping)
            }
            if (!awaitShipped())
            {
                continue; // the link is down or slow: scanning again would only find the same blocks
            }
            seen = scan(now);
            scanNow = !status.quiet;
        }
    }

    /** Waits up to {@code millis} for file events; true when some came (drained and counted). */
    private boolean waitForChange(final long millis)
    {
        if (inotify == null)
        {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(millis));
            return false;
        }
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (running)
        {
            final long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0)
            {
                return false;
            }
            // Short waits, so close() is seen promptly.
            if (inotify.await(Math.min(left, 200)) && drainEvents() > 0)
            {
                noticed();
                // A writer writes in bursts: start the scan once the events pause, so one burst costs one
                // scan (a scan started on its first write would miss what is written behind it).
                final long burstEnd = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(BURST_MAX_MILLIS);
                while (running && System.nanoTime() < burstEnd && inotify.await(BURST_QUIET_MILLIS)
                    && drainEvents() > 0)
                {
                    // keep draining
                }
                return true;
            }
        }
        return false;
    }

    private int drainEvents()
    {
        if (inotify == null)
        {
            return 0;
        }
        final int n = inotify.drain();
        status.events.addAndGet(n);
        if (inotify.gone())
        {
            failGone();
        }
        return n;
    }

    /** The file may have changed: not settled any more, and a standby called up to date is outdated now. */
    private void noticed()
    {
        status.quiet = false;
        primary.noteExternalChange();
    }

    /**
     * Lets the sender ship what was marked before scanning again (else the scan finds the same blocks),
     * and finish a whole-volume compare; false when still busy after {@link #SHIP_WAIT_MILLIS}.
     */
    private boolean awaitShipped()
    {
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(SHIP_WAIT_MILLIS);
        // Not before the standby is connected and its sync has passed the compare: a block not compared yet
        // has no shipped hash, and a scan would send it instead of letting the compare find it equal.
        while (running && (primary.metadata().dirtyMap().dirtyBlocks() > 0 || primary.comparing()
            || !primary.state().connected()))
        {
            if (System.nanoTime() > deadline)
            {
                return false;
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
        }
        return true;
    }

    private boolean checkSameFile(final Map<String, Object> now)
    {
        if (inode == null)
        {
            inode = now.get("ino");
        }
        else if (!inode.equals(now.get("ino")))
        {
            // mv new.img vm1.img: the old file stays mapped, unchanged for ever, and would look settled.
            fail(path + " was replaced by another file (inode " + inode + " -> " + now.get("ino") + "): the volume"
                + " still shows the old file, which nobody writes; restart the daemon to replicate the new one");
            return false;
        }
        final long size = ((Number)now.get("size")).longValue();
        if (size != volume.size())
        {
            fail(path + " changed size from " + volume.size() + " to " + size + " bytes; a watched volume keeps the"
                + " size it started with (resize the standby's image, then restart both daemons)");
            return false;
        }
        return true;
    }

    /**
     * One whole scan; marks changed blocks as it goes (so shipping starts before the scan ends). Returns the
     * file's attributes as they were when it started, which the next cycle compares with.
     */
    private Map<String, Object> scan(final Map<String, Object> before)
    {
        final long startMillis = System.currentTimeMillis();
        drainEvents(); // events from before the scan: the scan sees what they announced
        final long eventsBefore = status.events.get();
        status.scans.incrementAndGet();
        status.totalBytes = volume.size();
        status.scannedBytes = 0;
        status.scanning = true;
        long changed = 0;
        long unstable = 0;
        final long paceStart = System.nanoTime();
        long paced = 0;
        try
        {
            long block = 0;
            while (block < blockCount && running)
            {
                final long data = NativeIo.seekData(fd, block * blockSize);
                final long dataBlock = data < 0 ? blockCount : Math.min(blockCount, Math.max(block, data / blockSize));
                // A hole reads as zeros: unchanged only where a zero block was shipped.
                for (long b = block; b < dataBlock; b++)
                {
                    if (hashes.get(b) != WatchHashes.ZERO_BLOCK)
                    {
                        changed++;
                        mark(b);
                    }
                }
                status.scannedBytes = Math.min(volume.size(), dataBlock * blockSize);
                if (dataBlock >= blockCount)
                {
                    break;
                }
                final long hole = NativeIo.seekHole(fd, dataBlock * blockSize, volume.size());
                final long endBlock = Math.min(blockCount, Math.max(dataBlock + 1, (hole + blockSize - 1) / blockSize));
                for (long stripe = dataBlock; stripe < endBlock && running; stripe += STRIPE_BLOCKS)
                {
                    final long stripeEnd = Math.min(endBlock, stripe + STRIPE_BLOCKS);
                    for (long b = stripe; b < stripeEnd; b++)
                    {
                        final int found = compare(b);
                        if (found != 0)
                        {
                            changed++;
                            unstable += found > 1 ? 1 : 0;
                            mark(b);
                        }
                    }
                    handOver();
                    final long bytes = Math.min(volume.size(), stripeEnd * blockSize) - stripe * blockSize;
                    status.bytesRead.addAndGet(bytes);
                    status.scannedBytes = Math.min(volume.size(), stripeEnd * blockSize);
                    paced += bytes;
                    pace(paceStart, paced);
                    drainEvents();
                }
                block = endBlock;
            }
            handOver();
        }
        finally
        {
            status.scanning = false;
        }
        drainEvents();
        final Map<String, Object> after = stat();
        final boolean settled = running && changed == 0 && unstable == 0 && status.events.get() == eventsBefore
            && Objects.equals(before, after) && status.error.isEmpty();
        final long end = System.currentTimeMillis();
        status.changedBlocks.addAndGet(changed);
        status.unstableBlocks.addAndGet(unstable);
        status.lastScanChangedBlocks = changed;
        status.lastScanMillis = end - startMillis;
        status.lastScanEnd = end;
        if (settled)
        {
            status.lastQuietScanEnd = end;
        }
        status.quiet = settled;
        if (changed > 0)
        {
            Log.debug(component, "scan found " + changed + " changed block(s)" + (unstable > 0 ? ", " + unstable
                + " still changing" : "") + " in " + (end - startMillis) + " ms");
        }
        return before;
    }

    /**
     * 0: the block equals what was shipped; 1: it changed (and two reads agree); 2: it changed and kept
     * changing while read.
     */
    private int compare(final long block)
    {
        final long offset = block * blockSize;
        final int length = (int)Math.min(blockSize, volume.size() - offset);
        final ByteBuffer window = volume.windowFor(offset);
        final int index = volume.indexInWindow(offset);
        long h = WatchHashes.hashOf(window, index, length);
        if (h == hashes.get(block))
        {
            return 0;
        }
        for (int tries = 0; tries < 3; tries++)
        {
            final long again = WatchHashes.hashOf(window, index, length);
            if (again == h)
            {
                return 1;
            }
            h = again;
        }
        return 2;
    }

    private void mark(final long block)
    {
        if (block == runEnd)
        {
            runEnd++;
            return;
        }
        handOver();
        runStart = block;
        runEnd = block + 1;
    }

    private void handOver()
    {
        if (runStart >= 0)
        {
            primary.markChanged(runStart, runEnd);
            runStart = -1;
            runEnd = -1;
        }
    }

    /** Sleeps as long as reading {@code bytes} since {@code startNanos} at watch-rate bytes per second takes. */
    private void pace(final long startNanos, final long bytes)
    {
        final long rate = primary.config().watchRate();
        final long due = startNanos + (long)(bytes * 1e9 / rate);
        final long wait = due - System.nanoTime();
        if (wait > 0)
        {
            LockSupport.parkNanos(wait);
        }
    }

    /** Size, mtime, ctime and inode of the file (null when it cannot be read: reported). */
    private Map<String, Object> stat()
    {
        try
        {
            return Files.readAttributes(path, "unix:size,lastModifiedTime,ctime,ino");
        }
        catch (final java.nio.file.NoSuchFileException e)
        {
            failGone(); // the event saying so may not have been read yet
            return null;
        }
        catch (final IOException | UnsupportedOperationException e)
        {
            fail(path + ": cannot stat the watched file: " + e.getMessage());
            return null;
        }
    }

    private void failGone()
    {
        fail(path + " was deleted or renamed away: the volume still shows the old file, which nobody writes;"
            + " restart the daemon once the image is back in place");
    }

    private void fail(final String message)
    {
        status.quiet = false;
        if (!message.equals(status.error))
        {
            status.error = message;
            primary.state().lastError(message);
            Log.error(component, message);
        }
        primary.noteExternalChange();
    }

    @Override
    public void close() throws InterruptedException
    {
        running = false;
        thread.join(TimeUnit.SECONDS.toMillis(10));
    }
}
