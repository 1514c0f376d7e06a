"""The verdict study: pre-registered pretext arms with seeds on Tiny ImageNet (docs/verdict-study.md)."""

from transfer.verdict import main

if __name__ == "__main__":
    main()
