"""A small Tk program for the desktop tests: another process, as a real app would be.

Usage: python desktop_app.py STATE.json   ("{display}" in the path becomes $DISPLAY's number)

It writes its state (widget boxes in screen pixels, button presses, the entry's text, where the
draggable square is, the canvas scroll position, key combos seen) to STATE.json after every change,
atomically, so the test reads what the app itself saw.
"""

import json
import os
import sys
import tkinter as tk

state_path = sys.argv[1].replace("{display}", os.environ.get("DISPLAY", "").lstrip(":"))
root = tk.Tk()
root.title("pixelpilot test app")
root.geometry("760x560+0+0")
state = {"presses": 0, "combos": 0, "text": "", "square": None, "xview": 0.0, "yview": 0.0, "boxes": {}}


def save(*_):
    state["text"] = entry.get()
    x1, y1, _, _ = board.coords(square)
    state["square"] = [round(x1), round(y1)]
    state["xview"] = round(scroller.xview()[0], 4)
    state["yview"] = round(scroller.yview()[0], 4)
    for name, w in widgets.items():
        state["boxes"][name] = [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]
    tmp = state_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False)
    os.replace(tmp, state_path)


def press():
    state["presses"] += 1
    status.config(text=f"pressed {state['presses']}", bg="#ffd54f")
    save()


def combo(_event):
    state["combos"] += 1
    status.config(text=f"combo {state['combos']}", bg="#81d4fa")
    save()
    return "break"


button = tk.Button(root, text="Press me", font=("TkDefaultFont", 16), command=press)
button.place(x=20, y=20, width=200, height=60)
status = tk.Label(root, text="idle", font=("TkDefaultFont", 16), bg="#eeeeee")
status.place(x=240, y=20, width=300, height=60)
entry = tk.Entry(root, font=("TkDefaultFont", 16))
entry.place(x=20, y=100, width=520, height=40)
entry.bind("<KeyRelease>", save)

# A drag board: the red square follows a left-button drag.
board = tk.Canvas(root, bg="white", highlightthickness=0)
board.place(x=20, y=160, width=320, height=380)
square = board.create_rectangle(20, 20, 80, 80, fill="red", outline="")
drag = {"from": None}


def drag_start(e):
    drag["from"] = (e.x, e.y) if board.find_withtag("current") else None


def drag_move(e):
    if drag["from"]:
        board.move(square, e.x - drag["from"][0], e.y - drag["from"][1])
        drag["from"] = (e.x, e.y)


def drag_end(_e):
    drag["from"] = None
    save()


board.bind("<ButtonPress-1>", drag_start)
board.bind("<B1-Motion>", drag_move)
board.bind("<ButtonRelease-1>", drag_end)

# A scroll area larger than its window both ways, on the vertical (4/5) and horizontal (6/7) wheels.
scroller = tk.Canvas(
    root, bg="#f5f5f5", highlightthickness=0, scrollregion=(0, 0, 2000, 3000), xscrollincrement=10, yscrollincrement=10
)
scroller.place(x=360, y=160, width=380, height=380)
for i in range(30):
    scroller.create_text(10, 10 + i * 100, anchor="nw", text=f"row {i}", font=("TkDefaultFont", 14))
    scroller.create_line(0, i * 100, 2000, i * 100, fill="#90caf9")
for j in range(20):
    scroller.create_line(j * 100, 0, j * 100, 3000, fill="#a5d6a7")


def wheel(axis, units):
    def handler(_e):
        getattr(scroller, axis)("scroll", units, "units")
        save()

    return handler


# Tk 8.6 delivers the horizontal wheel buttons (6/7) as Shift-Button-4/5.
scroller.bind("<Button-4>", wheel("yview", -5))
scroller.bind("<Button-5>", wheel("yview", 5))
scroller.bind("<Shift-Button-4>", wheel("xview", -5))
scroller.bind("<Shift-Button-5>", wheel("xview", 5))


root.bind_all("<Control-Shift-K>", combo)
widgets = {"button": button, "status": status, "entry": entry, "board": board, "scroller": scroller}


def ready():
    root.update()  # mapped and laid out, so the boxes are real
    state["ready"] = True
    save()


root.after(100, ready)
root.mainloop()
