package io.doppel.watch;

import io.doppel.config.VolumeConfig;
import io.doppel.log.Log;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * A volume group: a {@code [[volume]]} whose {@code path} names a directory or a glob, each image file in it
 * a volume of its own (a member, named {@code <group>.<file>}; see {@link VolumeConfig}).
 *
 * <p>On the primary ({@code source = "watch"}) its own thread finds the members: inotify on the directory
 * (files created, moved in, written and closed, deleted, moved away) wakes it, and every {@code
 * watch-interval} it lists the directory anyway, so a missed event costs at most one interval. A new file
 * becomes a member once it has settled: its size and mtime unchanged for one {@code watch-interval} (a file
 * still being copied in keeps changing; a watched member must keep its size). Each member is then watched
 * and replicated exactly as a single watched volume ({@link FileWatcher}). A member's file that disappears
 * (deleted, renamed away) or is replaced by another file of that name is reported; the member keeps running
 * on what it mapped, and nothing is ever deleted on the standby.
 *
 * <p>On the standby a group has no thread: a member is created when its primary's link names it (with the
 * size the handshake carries), and members this node already holds are opened at start.
 *
 * <p>Design note: members are ordinary volumes (own metadata, sender, watcher, /status entry) rather than
 * one volume with many files, so every tool and verb works on them unchanged; the group only adds and
 * reports.
 */
public final class VolumeGroup implements Runnable, AutoCloseable
{
    /** What the group needs from the node that runs it. */
    public interface Host
    {
        /** Opens and starts the member volume {@code member}; throws with a message an operator can act on. */
        void addMember(VolumeConfig member) throws IOException;

        /** True when this node has metadata for the volume {@code name}: it was a member before a restart. */
        boolean knows(String name);

        /** The name of another {@code [[volume]]} entry whose path is {@code file}, or null. */
        String configuredAt(Path file);
    }

    /** A file seen in the directory: its size and mtime, and since when they have been so (nanoTime). */
    private record Sighting(long size, long mtimeMillis, long sinceNanos)
    {
    }

    private static final String REPLACED = "replaced by another file";

    private volatile VolumeConfig config;
    private final String component;
    private final Host host;
    private final PathMatcher matcher;
    private final Path directory;
    private final Thread thread;
    private volatile boolean running = true;
    private Inotify inotify;
    /** Members by file name, with the file's identity when it became one (null on a standby). */
    private final Map<String, Object> members = new ConcurrentSkipListMap<>();
    private final Map<String, Sighting> pending = new ConcurrentSkipListMap<>();
    /** Files that are not members, with why (not a regular file, a name that cannot be a volume name, ...). */
    private final Map<String, String> skipped = new ConcurrentSkipListMap<>();
    /** Members whose file disappeared, or was replaced by another file of the same name. */
    private final Map<String, String> missing = new ConcurrentSkipListMap<>();
    /** Files whose member could not be opened, as they were then: tried again once they change. */
    private final Map<String, Sighting> failed = new LinkedHashMap<>();
    private final AtomicLong scans = new AtomicLong();
    private final AtomicLong events = new AtomicLong();
    private volatile boolean inotifyInUse;
    private volatile String error = "";

    public VolumeGroup(final VolumeConfig config, final String component, final Host host)
    {
        if (!config.isGroup())
        {
            throw new IllegalArgumentException(config.name() + " is not a volume group");
        }
        this.config = config;
        this.component = component;
        this.host = host;
        this.matcher = config.memberMatcher();
        this.directory = config.groupDirectory();
        this.thread = new Thread(this, "doppel-group-" + config.name());
        this.thread.setDaemon(true);
    }

    public VolumeConfig config()
    {
        return config;
    }

    /** A live reload changed settings members share (ack, compression, ...). */
    public void config(final VolumeConfig next)
    {
        this.config = next;
    }

    public String name()
    {
        return config.name();
    }

    /** Primary only: starts finding members. */
    public void start()
    {
        thread.start();
    }

    /** Records a member this node opened itself (a standby's, created for its primary's link or at start). */
    public void memberOpened(final String fileName)
    {
        members.put(fileName, "");
    }

    /** The file names of members this node holds. */
    public Set<String> memberFiles()
    {
        return members.keySet();
    }

    public int memberCount()
    {
        return members.size();
    }

    public int missingCount()
    {
        return missing.size();
    }

    /**
     * The files a standby already holds for this group: member-named files in the directory that have
     * metadata here (so were synced into before). Others are left alone: they may be anyone's.
     */
    public List<String> heldFiles() throws IOException
    {
        final List<String> held = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory))
        {
            for (final Path f : files)
            {
                final String file = f.getFileName().toString();
                if (config.memberNameProblem(file) == null && Files.isRegularFile(f)
                    && host.knows(config.memberName(file)))
                {
                    held.add(file);
                }
            }
        }
        held.sort(null);
        return held;
    }

    @Override
    public void run()
    {
        try
        {
            inotify = Inotify.openDirectory(directory);
            inotifyInUse = true;
        }
        catch (final IOException | RuntimeException | UnsatisfiedLinkError e)
        {
            Log.warn(component, "no file events for directory " + directory + " (" + e.getMessage() + "); listing it"
                + " every watch-interval instead");
        }
        try
        {
            while (running)
            {
                rescan();
                waitForChange(config.watchIntervalMillis());
            }
        }
        catch (final RuntimeException e)
        {
            report("finding members stopped: " + e);
        }
        finally
        {
            if (inotify != null)
            {
                inotify.close();
            }
        }
    }

    /** Waits up to {@code millis} for directory events; a burst of them ends the wait once it pauses. */
    private void waitForChange(final long millis)
    {
        if (inotify == null)
        {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(millis));
            return;
        }
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (running)
        {
            final long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0)
            {
                return;
            }
            if (inotify.await(Math.min(left, 200)) && drain() > 0)
            {
                final long burstEnd = System.nanoTime()
                    + TimeUnit.MILLISECONDS.toNanos(FileWatcher.BURST_MAX_MILLIS);
                while (running && System.nanoTime() < burstEnd && inotify.await(FileWatcher.BURST_QUIET_MILLIS)
                    && drain() > 0)
                {
                    // a file copied in raises several events: list the directory once they pause
                }
                return;
            }
        }
    }

    private int drain()
    {
        final int n = inotify.drain();
        events.addAndGet(n);
        if (inotify.gone() && error.isEmpty())
        {
            report("directory " + directory + " was deleted or renamed away: no new members are found; members keep"
                + " running on the files they mapped. Restart the daemon once the directory is back");
            inotify.close();
            inotify = null; // listing every watch-interval from here on reports what is there
        }
        return n;
    }

    /** Lists the directory once: takes settled new files, reports files that went. */
    void rescan()
    {
        scans.incrementAndGet();
        final Set<String> present = new HashSet<>();
        final long intervalMillis = config.watchIntervalMillis();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory))
        {
            if (!error.isEmpty())
            {
                error = ""; // the directory is back (or readable again)
            }
            for (final Path file : files)
            {
                final String name = file.getFileName().toString();
                if (name.startsWith(".") || !matcher.matches(file.getFileName()))
                {
                    continue; // hidden files (a copy's temporary file) and files the pattern leaves out
                }
                present.add(name);
                look(file, name, intervalMillis);
            }
        }
        catch (final IOException e)
        {
            report("cannot list directory " + directory + ": " + e);
            return;
        }
        for (final String name : members.keySet())
        {
            if (!present.contains(name) && !missing.containsKey(name))
            {
                missing.put(name, "deleted or renamed away");
                Log.warn(component, "file " + directory.resolve(name) + " disappeared: member volume "
                    + config.memberName(name) + " keeps running on what it mapped and its standby copy is kept (never"
                    + " deleted); remove it from the standby by hand if it is no longer wanted");
            }
        }
        pending.keySet().retainAll(present);
        skipped.keySet().retainAll(present);
        failed.keySet().retainAll(present);
    }

    private void look(final Path file, final String name, final long intervalMillis)
    {
        final BasicFileAttributes attrs;
        try
        {
            attrs = Files.readAttributes(file, BasicFileAttributes.class); // follows a symlink to an image
        }
        catch (final IOException e)
        {
            return; // gone between the listing and now: the next listing says so
        }
        if (members.containsKey(name))
        {
            final Object key = members.get(name);
            if (!Objects.equals(key, attrs.fileKey()) && !REPLACED.equals(missing.get(name)))
            {
                missing.put(name, REPLACED); // also a file deleted and then created again under its name
                Log.warn(component, "file " + file + " was replaced by another file of that name: member volume "
                    + config.memberName(name) + " keeps running on the file it mapped, and its standby copy is kept;"
                    + " restart the daemon to replicate the new file");
            }
            else if (Objects.equals(key, attrs.fileKey()) && missing.remove(name) != null)
            {
                Log.info(component, "file " + file + " is back (renamed back in place)");
            }
            return;
        }
        final String other = host.configuredAt(file);
        if (other != null)
        {
            skip(name, "the path of volume " + other + ", which replicates it on its own");
            return;
        }
        if (!attrs.isRegularFile())
        {
            skip(name, "not a regular file (" + (attrs.isDirectory() ? "a directory" : "a device, fifo or socket")
                + "); only image files become volumes, and subdirectories are not searched");
            return;
        }
        final String problem = config.memberNameProblem(name);
        if (problem != null)
        {
            skip(name, problem);
            return;
        }
        final long now = System.nanoTime();
        final Sighting seen = new Sighting(attrs.size(), attrs.lastModifiedTime().toMillis(), now);
        final Sighting before = pending.get(name);
        final boolean same = before != null && before.size() == seen.size()
            && before.mtimeMillis() == seen.mtimeMillis();
        if (!same)
        {
            pending.put(name, seen);
        }
        final Sighting lastFailure = failed.get(name);
        if (lastFailure != null && lastFailure.size() == seen.size() && lastFailure.mtimeMillis() == seen.mtimeMillis())
        {
            return; // reported when it failed; tried again once the file changes
        }
        if (seen.size() == 0)
        {
            return; // an empty file is a copy that has not started: wait
        }
        final boolean settled = System.currentTimeMillis() - seen.mtimeMillis() >= intervalMillis
            || same && now - before.sinceNanos() >= TimeUnit.MILLISECONDS.toNanos(intervalMillis);
        if (!settled && !host.knows(config.memberName(name)))
        {
            return; // still being written (or just was): a member must keep its size
        }
        pending.remove(name);
        skipped.remove(name);
        try
        {
            host.addMember(config.member(name, 0));
            members.put(name, attrs.fileKey() == null ? "" : attrs.fileKey());
            failed.remove(name);
            Log.info(component, "new member volume " + config.memberName(name) + " for " + file + " ("
                + seen.size() + " bytes)");
        }
        catch (final IOException | RuntimeException e)
        {
            failed.put(name, seen);
            skip(name, "cannot open it as a volume: " + e.getMessage());
        }
    }

    private void skip(final String name, final String why)
    {
        if (!why.equals(skipped.put(name, why)))
        {
            Log.warn(component, "file " + directory.resolve(name) + " is not a member: " + why);
        }
    }

    private void report(final String message)
    {
        if (!message.equals(error))
        {
            error = message;
            Log.error(component, message);
        }
    }

    /** The group's entry in {@code /status} ("groups"; fields in docs/operations.md). */
    public Map<String, Object> toMap()
    {
        final Map<String, Object> m = new LinkedHashMap<>();
        final VolumeConfig c = config;
        m.put("name", c.name());
        m.put("role", c.role().configName());
        m.put("path", c.path().toString());
        m.put("directory", directory.toString());
        m.put("pattern", c.members());
        final List<String> names = new ArrayList<>();
        for (final String file : members.keySet())
        {
            names.add(c.memberName(file));
        }
        m.put("members", names);
        m.put("pending", new ArrayList<>(pending.keySet()));
        final Map<String, String> gone = new TreeMap<>(missing);
        m.put("missing", gone);
        m.put("skipped", new TreeMap<>(skipped));
        m.put("scans", scans.get());
        m.put("events", events.get());
        m.put("inotify", inotifyInUse);
        m.put("error", error);
        return m;
    }

    @Override
    public void close() throws InterruptedException
    {
        running = false;
        if (thread.isAlive())
        {
            thread.join(TimeUnit.SECONDS.toMillis(10));
        }
    }
}
