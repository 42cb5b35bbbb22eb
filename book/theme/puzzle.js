// Behaviour shared by the English and Korean books (book/theme/, linked from
// book/i18n/ko/theme). mdBook loads this file after its own book.js.
(function () {
    "use strict";

    // ---- Tabs --------------------------------------------------------------
    // <div class="code-tabs" data-tab-group="NAME"> holds a .tab-buttons row
    // and one .tab-content per button, in the same order. Picking a tab picks
    // the same tab in every group with that NAME, and is remembered.

    const STORE = "puzzle20-tab-";

    function remembered(group) {
        try {
            return window.localStorage.getItem(STORE + group);
        } catch (e) {
            return null;
        }
    }

    function remember(group, label) {
        try {
            window.localStorage.setItem(STORE + group, label);
        } catch (e) {
            // Private windows and file:// pages may refuse storage; tabs still work.
        }
    }

    function tabParts(tabs) {
        const buttons = Array.from(tabs.querySelectorAll(":scope > .tab-buttons > .tab-button"));
        const panels = Array.from(tabs.querySelectorAll(":scope > .tab-content"));
        return { buttons: buttons, panels: panels };
    }

    function select(tabs, index) {
        const parts = tabParts(tabs);
        parts.buttons.forEach(function (button, i) {
            const on = i === index;
            button.setAttribute("aria-selected", on ? "true" : "false");
            button.tabIndex = on ? 0 : -1;
            button.classList.toggle("active", on);
        });
        parts.panels.forEach(function (panel, i) {
            panel.classList.toggle("active", i === index);
        });
    }

    function selectLabel(group, label) {
        document.querySelectorAll('.code-tabs[data-tab-group="' + group + '"]').forEach(function (tabs) {
            const index = tabParts(tabs).buttons.findIndex(function (b) {
                return b.textContent.trim() === label;
            });
            if (index >= 0) {
                select(tabs, index);
            }
        });
    }

    function setUpTabs() {
        document.querySelectorAll(".code-tabs").forEach(function (tabs, n) {
            const parts = tabParts(tabs);
            if (parts.buttons.length === 0 || parts.buttons.length !== parts.panels.length) {
                return; // leave malformed markup as plain, fully visible content
            }
            const group = tabs.dataset.tabGroup || "";
            tabs.querySelector(":scope > .tab-buttons").setAttribute("role", "tablist");
            parts.buttons.forEach(function (button, i) {
                const id = "tab-" + n + "-" + i;
                button.type = "button";
                button.id = id;
                button.setAttribute("role", "tab");
                parts.panels[i].setAttribute("role", "tabpanel");
                parts.panels[i].setAttribute("aria-labelledby", id);
                button.addEventListener("click", function () {
                    const label = button.textContent.trim();
                    if (group) {
                        remember(group, label);
                        selectLabel(group, label);
                    } else {
                        select(tabs, i);
                    }
                });
                button.addEventListener("keydown", function (event) {
                    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
                    if (step) {
                        const next = parts.buttons[(i + step + parts.buttons.length) % parts.buttons.length];
                        next.focus();
                        next.click();
                        event.preventDefault();
                    }
                });
            });
            select(tabs, 0);
            tabs.classList.add("tabs-ready");
        });
        document.querySelectorAll(".code-tabs[data-tab-group]").forEach(function (tabs) {
            const label = remembered(tabs.dataset.tabGroup);
            if (label) {
                selectLabel(tabs.dataset.tabGroup, label);
            }
        });
    }

    // ---- Mojo listings -------------------------------------------------------
    // mdBook's highlight.js has no Mojo grammar; Mojo's syntax is close enough
    // to Python's for keywords, strings, numbers and comments to colour well.

    function highlightMojo() {
        if (typeof hljs === "undefined" || !hljs.getLanguage("python")) {
            return;
        }
        if (!hljs.getLanguage("mojo")) {
            hljs.registerAliases(["mojo"], { languageName: "python" });
        }
        document.querySelectorAll("code.language-mojo").forEach(function (block) {
            if (!block.querySelector("span")) {
                hljs.highlightBlock(block);
            }
        });
    }

    // ---- Listings ------------------------------------------------------------
    // An {{#include file:anchor}} keeps the anchor's indentation (a line quoted
    // from inside a function starts with spaces) and the blank lines that stand
    // before the anchor's end. Drop both, so a listing starts at the left edge
    // and its box ends with code.

    function dedent(code) {
        const lines = code.textContent.split("\n").filter(function (line) {
            return line.trim() !== "";
        });
        if (lines.length === 0) {
            return;
        }
        const common = Math.min.apply(null, lines.map(function (line) {
            return line.match(/^ */)[0].length;
        }));
        if (common === 0) {
            return;
        }
        const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
        const texts = [];
        while (walker.nextNode()) {
            texts.push(walker.currentNode);
        }
        let toEat = common; // spaces still to drop at the start of this line
        texts.forEach(function (text) {
            let kept = "";
            for (const ch of text.textContent) {
                if (ch === "\n") {
                    toEat = common;
                    kept += ch;
                } else if (toEat > 0 && ch === " ") {
                    toEat -= 1;
                } else {
                    toEat = 0;
                    kept += ch;
                }
            }
            text.textContent = kept;
        });
    }

    function trimListings() {
        document.querySelectorAll("pre > code").forEach(function (code) {
            dedent(code);
            let node = code.lastChild;
            while (node && node.nodeType === Node.TEXT_NODE && /^\s*$/.test(node.textContent)) {
                const empty = node;
                node = node.previousSibling;
                empty.remove();
            }
            if (node && node.nodeType === Node.TEXT_NODE) {
                node.textContent = node.textContent.replace(/\s+$/, "");
            }
        });
    }

    // ---- Language switch -------------------------------------------------------
    // build.py puts the Korean book in ko/ inside the English one, and both
    // books have the same page paths, so the other language's page is one
    // folder down (English -> Korean) or up (Korean -> English). The #fragment
    // stays behind: headings have different ids in the two languages.

    const OTHER = {
        en: { folder: "ko/", label: "한국어", lang: "ko", title: "이 페이지를 한국어로 보기" },
        ko: { folder: "../", label: "English", lang: "en", title: "Read this page in English" },
    };

    function addLanguageSwitch() {
        const here = (document.documentElement.lang || "en").toLowerCase();
        const other = OTHER[here];
        const buttons = document.querySelector(".menu-bar .right-buttons");
        if (!other || !buttons || typeof path_to_root === "undefined") {
            return;
        }
        const root = new URL(path_to_root || "./", window.location.href);
        let page = window.location.pathname.slice(root.pathname.length);
        if (!window.location.pathname.startsWith(root.pathname)) {
            page = "";
        }
        if (page === "" || page.endsWith("/")) {
            page += "index.html";
        }
        const link = document.createElement("a");
        link.className = "lang-switch";
        link.href = new URL(other.folder + page, root).href;
        link.hreflang = other.lang;
        link.lang = other.lang;
        link.title = other.title;
        link.setAttribute("aria-label", other.title);
        link.textContent = other.label;
        buttons.insertBefore(link, buttons.firstChild);
    }

    function start() {
        setUpTabs();
        highlightMojo();
        trimListings();
        addLanguageSwitch();
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
