import sys

from benchmarks.knowledge_update.run import main

sys.exit(main())
