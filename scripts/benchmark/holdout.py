"""The holdout split of the generated benchmark: never tune on it, never look at how the system answers it.

It stands in for "videos and questions made by other people": subjects, names,
numbers, signs, voices, fonts and shot sources that appear in neither ``dev.py``
nor ``test.py``, and questions written independently, in other words and other
sentence shapes (indirect references, synonyms, descriptions instead of names).
Same format as the other splits (``dev.py``'s docstring describes it).

Voices are espeak-ng ``voice+variant`` names; a variant is a file name under
``espeak-ng-data/voices/!v`` and is case-sensitive (an unknown one is silently
ignored), so the ones below are spelt as their files are.
"""

LIB_SERIF = "/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf"
NARROW = "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf"
SERIF_COND = "/usr/share/fonts/truetype/dejavu/DejaVuSerifCondensed-Bold.ttf"
SANS_MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
LIB_SANS = "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"

LIB_A, LIB_B = "en-gb-x-gbclan+steph", "en-gb-x-gbclan+m3"  # Lancaster
BIKE_A, BIKE_B = "en-us-nyc+caleb", "en-us-nyc+belinda"  # New York City
RAIL_A, RAIL_B = "en-gb-x-gbcwmd+Gene", "en-gb-x-gbcwmd+Andrea"  # West Midlands

SHORT_VIDEOS: list[dict] = [
    {
        "name": "library_notice",
        "fontsize": 34,
        # cuts at 13, 24, 36, 50, 60, 72; 84 s
        "shots": [(13, ("grad", "1e1436", "7a64c8", 111)), (11, ("life", 52)), (12, ("mandel",)),
                  (14, ("grad", "3c2a10", "d8b070", 112, True)), (10, ("hdbars",)), (12, ("plasma", 5.7)),
                  (12, ("cell", 77))],
        "speech": [
            ("Welcome to the Riverside public library, open since nineteen sixty four.", 1.0, LIB_A),
            ("Our head librarian, Agnes Whitcombe, runs the reading club every Tuesday.", 14.0, LIB_A),
            ("The photocopier on the second floor began jamming this morning.", 25.0, LIB_B),
            ("Borrowed books may be kept for twenty one days. After that, a fine of ten pence is charged "
             "for each extra day.", 37.0, LIB_A),
            ("The photocopier on the second floor stopped jamming after lunch.", 51.0, LIB_B),
            ("Children's story time takes place in the basement, in room fourteen.", 61.0, LIB_A),
            ("Please return laptops to the front desk fifteen minutes before closing.", 73.0, LIB_A),
        ],
        "onscreen": [
            ("RIVERSIDE", 2.0, 7.0, {"font": LIB_SERIF, "color": "orange"}),
            ("QUIET PLEASE", 8.0, 12.0, {"y": "bottom", "box": "0x003838", "size": 28}),
            ("READING CLUB TUE", 15.0, 21.0, {"font": NARROW}),
            ("QUIET PLEASE", 30.0, 35.0, {"y": "bottom", "box": "0x003838", "size": 28}),
            ("LOAN 21 DAYS", 38.0, 44.0),
            ("LATE FEE 10p", 44.0, 56.0, {"cross": True, "y": "top", "size": 28, "box": "0x5a1000"}),
            ("ROOM 14", 62.0, 66.0, {"font": SANS_MONO, "color": "lime"}),
            ("QUIET PLEASE", 67.0, 71.0, {"y": "bottom", "box": "0x003838", "size": 28}),
            ("FRONT DESK", 76.0, 81.0, {"font": LIB_SERIF}),
        ],
        "questions": [
            ("when_speech", "Where in the clip do they explain how long you can hold on to items you take home, "
             "and what it costs you if you're late?", [("s", "Borrowed books")], None, None),
            ("when_speech", "At which point are we told the copying machine upstairs is working properly "
             "again?", [("s", "The photocopier on the second floor stopped")], None, None),
            ("when_text", "When does the overdue-charge notice run across the top of the picture?",
             [("t", "LATE FEE 10p")], None, None),
            ("when_text", "I'm looking for the moment the downstairs room number for the kids' session is "
             "written up - when is that?", [("t", "ROOM 14")], None, None),
            ("fact", "What's the maximum number of days a borrower may keep a book without paying extra?",
             [("s", "Borrowed books")], "21", None),
            ("fact", "The person who leads the library staff - what is her family name?",
             [("s", "Our head librarian")], "Whitcombe", None),
            ("choice", "Which day of the week does the book discussion group get together?",
             [("s", "Our head librarian")], "Tuesday", ["Monday", "Tuesday", "Thursday", "Sunday"]),
            ("multi_hop", "While the chief librarian is being introduced, which words can be read on the "
             "screen?", [("overlap", ("t", "READING CLUB TUE"), ("s", "Our head librarian"))],
             "READING CLUB TUE", None),
            ("ordering", "Which is announced sooner: the deadline for handing back portable computers, or "
             "the introduction of the senior librarian?", [("s", "Please return laptops"),
                                                            ("s", "Our head librarian")],
             "the introduction of the senior librarian",
             ["the deadline for handing back portable computers", "the introduction of the senior librarian"]),
            ("counting", "How many separate times is the request for silence put up as text?",
             [("t*", "QUIET PLEASE")], "3", None),
            ("whole_video", "What sort of recording is this?", [],
             "announcements at a public library",
             ["a bicycle repair lesson", "announcements at a public library", "a cookery programme",
              "a train timetable"]),
            ("absent", "When is a visiting author's book signing advertised?", [], "not found", None),
            ("absent", "At what time does the wifi password show up on screen?", [], "not found", None),
        ],
    },
    {
        "name": "bike_repair",
        "fontsize": 36,
        # cuts at 10, 23, 35, 46, 60, 70; 80 s
        "shots": [(10, ("cell", 57)), (13, ("grad", "0a3020", "50d090", 121)), (12, ("rgbtest",)),
                  (11, ("life", 37)), (14, ("grad", "3a2000", "e0a040", 122, True)), (10, ("plasma", 0.9)),
                  (10, ("bars",))],
        "speech": [
            ("In this lesson, mechanic Oskar Brandt shows how to fix a flat tyre.", 1.0, BIKE_A),
            ("Use two plastic levers to lift the tyre off the rim.", 11.0, BIKE_A),
            ("Inflate the tube to five bar and listen for escaping air.", 16.6, BIKE_A),
            ("Rub the area around the hole with sandpaper. Then spread a thin layer of glue and wait three "
             "minutes.", 24.0, BIKE_A),
            ("The workshop radio started playing jazz while the glue dried.", 36.0, BIKE_B),
            ("Press the patch down firmly for thirty seconds.", 47.0, BIKE_A),
            ("The workshop radio stopped playing when the power went out.", 53.0, BIKE_B),
            ("A new patch kit costs six dollars at Brandt Cycles on Elm Street.", 61.0, BIKE_A),
            ("Check the brakes before every ride.", 71.0, BIKE_A),
        ],
        "onscreen": [
            ("GLOVES ON", 5.0, 9.0, {"font": SERIF_COND, "color": "yellow", "y": "bottom"}),
            ("2 LEVERS", 11.4, 15.0, {"y": "top"}),
            ("5 BAR", 18.0, 22.0, {"font": SANS_MONO, "size": 44}),
            ("WAIT 3 MIN", 29.0, 34.0, {"box": "0x202060"}),
            ("GLOVES ON", 38.0, 43.0, {"font": SERIF_COND, "color": "yellow", "y": "bottom"}),
            ("30 SEC", 48.0, 52.0, {"color": "pink"}),
            ("BRANDT CYCLES", 56.0, 67.0, {"cross": True, "y": "bottom", "size": 30, "font": NARROW,
                                           "box": "0x404000"}),
            ("GLOVES ON", 73.0, 78.0, {"font": SERIF_COND, "color": "yellow", "y": "bottom"}),
        ],
        "questions": [
            ("when_speech", "When does the instructor go through roughening the rubber around the puncture "
             "and putting on the adhesive?", [("s", "Rub the area")], None, None),
            ("when_speech", "At what moment does music begin to play in the shop?",
             [("s", "The workshop radio started")], None, None),
            ("when_text", "When is the name of the bike business written along the lower edge of the frame?",
             [("t", "BRANDT CYCLES")], None, None),
            ("when_text", "When does a caption say how long to let things sit before continuing?",
             [("t", "WAIT 3 MIN")], None, None),
            ("fact", "To what pressure, in bar, should the inner tube be pumped up?",
             [("s", "Inflate the tube")], "5", None),
            ("fact", "What is the first name of the man demonstrating the repair?",
             [("s", "In this lesson")], "Oskar", None),
            ("choice", "How long are you supposed to keep pushing on the patch?",
             [("s", "Press the patch")], "thirty seconds",
             ["ten seconds", "thirty seconds", "one minute", "five minutes"]),
            ("multi_hop", "What caption is up while the narrator talks about the tools used to pry the "
             "rubber away from the wheel?", [("overlap", ("t", "2 LEVERS"), ("s", "Use two plastic"))],
             "2 LEVERS", None),
            ("ordering", "What comes up earlier in the lesson: the reminder to test your stopping gear, or "
             "the tunes coming on?", [("s", "Check the brakes"), ("s", "The workshop radio started")],
             "the tunes coming on", ["the reminder to test your stopping gear", "the tunes coming on"]),
            ("counting", "How often does the reminder to protect your hands appear in writing?",
             [("t*", "GLOVES ON")], "3", None),
            ("whole_video", "What skill does this clip teach?", [],
             "repairing a punctured bicycle tyre",
             ["changing a car's oil", "repairing a punctured bicycle tyre", "tuning a guitar",
              "baking bread"]),
            ("absent", "At what point does the mechanic explain how to adjust the gears?", [], "not found", None),
            ("absent", "When is the chain taken off and oiled?", [], "not found", None),
        ],
    },
    {
        "name": "station_announcements",
        "fontsize": 34,
        # cuts at 12, 25, 36, 49, 61, 74; 86 s
        "shots": [(12, ("grad", "102030", "6080c0", 131)), (13, ("mandel",)), (11, ("cell", 63)),
                  (13, ("grad", "302000", "c08000", 132, True)), (12, ("life", 45)), (13, ("hdbars",)),
                  (12, ("grad", "200010", "a03060", 133))],
        "speech": [
            ("Good afternoon, and welcome to Harrowgate Central station.", 1.0, RAIL_A),
            ("The eleven forty service to Bristol will depart from platform nine.", 13.0, RAIL_A),
            ("The fire alarm test has begun in the ticket hall.", 26.0, RAIL_B),
            ("Please keep your luggage with you at all times.", 31.0, RAIL_A),
            ("Due to a signal failure near Oxford, the express is running twenty five minutes late. We "
             "apologise for the inconvenience.", 37.0, RAIL_A),
            ("The fire alarm test has ended in the ticket hall.", 50.0, RAIL_B),
            ("Passengers for the airport should change at Redbridge.", 62.0, RAIL_A),
            ("Lost property is kept in the office beside the cafe, looked after by Dorothy Quayle.", 75.0,
             RAIL_A),
        ],
        "onscreen": [
            ("MIND THE GAP", 6.0, 10.0, {"font": LIB_SANS, "color": "yellow"}),
            ("BRISTOL 11:40", 14.0, 19.0, {"font": SANS_MONO, "size": 30}),
            ("TICKET HALL", 26.4, 30.0, {"y": "top", "box": "0x600000"}),
            ("DELAYED +25", 40.0, 55.0, {"cross": True, "y": "top", "size": 28, "box": "0x800000",
                                         "font": SERIF_COND}),
            ("MIND THE GAP", 56.0, 60.0, {"font": LIB_SANS, "color": "yellow"}),
            ("REDBRIDGE", 64.0, 69.0, {"y": "bottom", "color": "cyan"}),
            ("LOST PROPERTY", 76.0, 79.0, {"font": NARROW}),
            ("MIND THE GAP", 80.0, 84.0, {"font": LIB_SANS, "color": "yellow"}),
        ],
        "questions": [
            ("when_speech", "When do we hear why the fast train is behind schedule, followed by an "
             "apology?", [("s", "Due to a signal failure")], None, None),
            ("when_speech", "When does the announcer say the fire drill is finished?",
             [("s", "The fire alarm test has ended")], None, None),
            ("when_text", "When is the notice about the late-running service visible at the top of the "
             "screen?", [("t", "DELAYED +25")], None, None),
            ("when_text", "When is the name of the stop where airport travellers switch trains "
             "displayed?", [("t", "REDBRIDGE")], None, None),
            ("fact", "By how many minutes is the express delayed?", [("s", "Due to a signal failure")], "25",
             None),
            ("fact", "Who takes care of the office where items left behind are stored?",
             [("s", "Lost property")], "Dorothy Quayle", None),
            ("choice", "Which platform does the train heading to Bristol leave from?",
             [("s", "The eleven forty")], "9", ["3", "6", "9", "12"]),
            ("multi_hop", "What can be read on screen during the announcement of the late-morning "
             "departure to the south-west?", [("overlap", ("t", "BRISTOL 11:40"), ("s", "The eleven forty"))],
             "BRISTOL 11:40", None),
            ("ordering", "Which do travellers hear about first: keeping their bags close, or changing trains "
             "for the airport?", [("s", "Please keep your luggage"), ("s", "Passengers for the airport")],
             "keeping their bags close", ["keeping their bags close", "changing trains for the airport"]),
            ("counting", "How many times does the warning about the space between the train and the "
             "platform edge appear on screen?", [("t*", "MIND THE GAP")], "3", None),
            ("whole_video", "Where would you expect to hear this kind of broadcast?", [],
             "at a railway station",
             ["in a hospital waiting room", "at a football stadium", "at a railway station", "in a library"]),
            ("absent", "When is a replacement bus service announced?", [], "not found", None),
        ],
    },
]

NEEDLE = {
    "fontsize": 30,
    "filler": [
        "The background shifts its colours without any hurry.",
        "Nobody has anything to say for a long while.",
        "Only gentle shades drift across the frame.",
        "There is very little to report in this stretch.",
    ],
    "events": [
        (0.10, 18.0, "Grandmother Beatrix Okonkwo hid a jar of copper coins inside the piano.", None),
        (0.35, 25.0, None, ("CABIN 312", 25.0, 31.0)),
        (0.60, 14.0, "A night train carried nine hundred violins to Budapest.", ("CRATE 5120", 14.4, 18.0)),
        (0.85, 30.0, "The combination for the attic safe is four eight two six.", None),
    ],
    "repeat": ("AUDIT", [0.22, 0.47, 0.72], 36.0, 42.0),
    "questions": [
        ("when_speech", "At what point does the narration describe an old lady stashing money in a "
         "musical instrument?", [("s", "Grandmother Beatrix")], None, None),
        ("when_text", "When does a sign with a numbered sleeping compartment on a ship come up?",
         [("t", "CABIN 312")], None, None),
        ("fact", "Which number is written on the cabin sign?", [("t", "CABIN 312")], "312", None),
        ("fact", "Which four digits open the strongbox up under the roof?", [("s", "The combination")],
         "4826", None),
        ("fact", "What is the first name of the grandmother who hides the coins?",
         [("s", "Grandmother Beatrix")], "Beatrix", None),
        ("multi_hop", "Which shipping label is visible while the speaker talks about string instruments "
         "travelling overnight by rail to Hungary?",
         [("overlap", ("t", "CRATE 5120"), ("s", "A night train"))], "CRATE 5120", None),
        ("ordering", "Of the hidden coins and the code for the safe, which is mentioned earlier?",
         [("s", "Grandmother Beatrix"), ("s", "The combination")], "the hidden coins",
         ["the hidden coins", "the code for the safe"]),
        ("counting", "How many times does a word meaning a formal review of the accounts flash up?",
         [("t*", "AUDIT")], "3", None),
        ("whole_video", "Overall, what is this lengthy video made up of?", [],
         "long stretches of shifting colour with occasional remarks",
         ["a cartoon", "long stretches of shifting colour with occasional remarks", "a news broadcast"]),
        ("absent", "When does someone talk about a lighthouse keeper?", [], "not found", None),
        ("absent", "At what point is a car number plate shown?", [], "not found", None),
    ],
}
