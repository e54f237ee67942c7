package io.doppel.cli;

import io.doppel.config.Units;
import io.doppel.tools.MixedImage;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** Helpers for demos and benchmarks: make a mixed sample image, change part of one, hash one. */
final class ImageCommands
{
    private ImageCommands()
    {
    }

    @Command(name = "make-image", mixinStandardHelpOptions = true,
        description = "Write a sample image: 1 MiB stripes of zeros (holes), text-like and random data, in turn.")
    static final class MakeImage implements Callable<Integer>
    {
        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Option(names = "--size", required = true, description = "image size, e.g. 1GiB")
        String size;

        @Option(names = "--seed", defaultValue = "1", description = "random seed (default: ${DEFAULT-VALUE})")
        long seed;

        @Override
        public Integer call() throws Exception
        {
            MixedImage.create(file, Units.parseSize(size), seed);
            System.out.println(file + ": " + Units.formatBytes(Units.parseSize(size)) + " mixed image written");
            return 0;
        }
    }

    @Command(name = "mutate-image", mixinStandardHelpOptions = true,
        description = "Overwrite a random fraction of an image's blocks with new content.")
    static final class MutateImage implements Callable<Integer>
    {
        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Option(names = "--fraction", required = true, description = "fraction of blocks to change, 0..1")
        double fraction;

        @Option(names = "--unit", defaultValue = "4KiB", description = "block size to change (default: ${DEFAULT-VALUE})")
        String unit;

        @Option(names = "--seed", defaultValue = "2", description = "random seed (default: ${DEFAULT-VALUE})")
        long seed;

        @Override
        public Integer call() throws Exception
        {
            if (fraction < 0 || fraction > 1)
            {
                System.err.println("doppel: --fraction=" + fraction + ": expected a number between 0 and 1");
                return 2;
            }
            final long changed = MixedImage.mutate(file, fraction, (int)Units.parseSize(unit), seed);
            System.out.println(file + ": " + changed + " bytes changed");
            return 0;
        }
    }

    @Command(name = "hash-image", mixinStandardHelpOptions = true,
        description = "Print the XXH3-128 of whole files (to compare a primary image with its standby copy).")
    static final class HashImage implements Callable<Integer>
    {
        @Parameters(paramLabel = "FILE", arity = "1..*")
        Path[] files;

        @Override
        public Integer call() throws Exception
        {
            for (final Path f : files)
            {
                System.out.println(MixedImage.hash(f) + "  " + f);
            }
            return 0;
        }
    }
}
